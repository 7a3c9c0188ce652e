"""`ctiport export` on samples/mdti (which contains malformed records, so the run is partial)."""
from __future__ import annotations

import json

import pytest

from e2e_util import (EXIT_PARTIAL, PROFILE_TYPES, SAMPLES, assert_rejections_reported,
                      assert_stix_ok, by_type, canonical_objects, expected_rejections, export,
                      relationships, run_ctiport)

SCO_TYPES = {"ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr", "file",
             "x509-certificate", "autonomous-system"}


def expected_counts(samples_expected):
    return samples_expected["actors"], samples_expected["tools"]


def test_samples_export_is_partial_and_valid(samples_export):
    assert samples_export.run.returncode == EXIT_PARTIAL, samples_export.run.describe()
    bundle = samples_export.bundle
    assert bundle["type"] == "bundle"
    assert bundle["id"].startswith("bundle--")
    assert_stix_ok(samples_export.bundle_path)


def test_samples_summary(samples_export, samples_expected):
    s = samples_export.summary
    n_objects = len(samples_export.objects)
    for key in ("profiles", "indicators", "rejected", "skipped", "objects", "exit_code", "sinks",
                "rejected_records", "skipped_records"):
        assert key in s, "summary lacks %r: %s" % (key, sorted(s))
    assert s["exit_code"] == EXIT_PARTIAL
    assert s["profiles"] == samples_expected["profiles"]
    assert s["rejected"] == samples_expected["rejected"]
    assert s["skipped"] == samples_expected["skipped"]
    assert len(s["skipped_records"]) == s["skipped"]
    assert all(r["record"] == "indicator" for r in s["skipped_records"]), s["skipped_records"]
    assert isinstance(s["indicators"], int) and s["indicators"] > 0
    assert isinstance(s["objects"], int) and 0 < s["objects"] <= n_objects
    assert len(s["sinks"]) == 1
    sink = s["sinks"][0]
    assert sink["sink"].startswith("stix:"), sink
    assert sink["status"] == "ok", sink
    assert sink["objects"] == n_objects, (sink, n_objects)


def test_samples_rejected_records_reported(samples_export, samples_expected):
    assert_rejections_reported(samples_export.run, samples_export.summary,
                               expected_rejections(samples_expected))


def test_samples_default_mapping_shape(samples_export, samples_expected):
    objs = samples_export.objects
    actors, tools = expected_counts(samples_expected)
    assert len(by_type(objs, "threat-actor")) == actors
    assert len(by_type(objs, "intrusion-set")) == 0
    assert len(by_type(objs, "tool")) == tools
    indicators = by_type(objs, "indicator")
    assert 0 < len(indicators) <= samples_expected["mappable_indicators"]
    ids = {o["id"]: o["type"] for o in objs}
    indicates = relationships(objs, "indicates")
    sources = {r["source_ref"] for r in indicates}
    assert {i["id"] for i in indicators} <= sources, "indicator(s) without an indicates relationship"
    for r in indicates:
        assert ids[r["source_ref"]] == "indicator", r
        assert ids[r["target_ref"]] in PROFILE_TYPES, r
    # no observables unless asked for
    assert not [o for o in objs if o["type"] in SCO_TYPES]
    assert not relationships(objs, "based-on")
    # the producer identity is in the bundle
    assert by_type(objs, "identity")


def test_samples_with_observables(tmp_path, samples_expected):
    e = export(SAMPLES, tmp_path, "--observables", expect_exit=EXIT_PARTIAL)
    assert_stix_ok(e.bundle_path, allow_based_on_sco=True)
    objs = e.objects
    ids = {o["id"]: o["type"] for o in objs}
    scos = [o for o in objs if o["type"] in SCO_TYPES]
    based_on = relationships(objs, "based-on")
    assert scos, "--observables produced no SCOs"
    assert based_on, "--observables produced no based-on relationships"
    for r in based_on:
        assert ids[r["source_ref"]] == "indicator", r
        assert ids[r["target_ref"]] in SCO_TYPES, r
    # every SCO is linked from an indicator
    assert {o["id"] for o in scos} <= {r["target_ref"] for r in based_on}
    assert e.summary["sinks"][0]["objects"] == len(objs)
    assert e.summary["rejected"] == samples_expected["rejected"]


@pytest.mark.parametrize("mode", ["intrusion-set", "both"])
def test_samples_actor_as(tmp_path, samples_expected, mode):
    e = export(SAMPLES, tmp_path, "--actor-as", mode, expect_exit=EXIT_PARTIAL)
    assert_stix_ok(e.bundle_path)
    objs = e.objects
    actors, tools = expected_counts(samples_expected)
    assert len(by_type(objs, "intrusion-set")) == actors
    assert len(by_type(objs, "threat-actor")) == (actors if mode == "both" else 0)
    assert len(by_type(objs, "tool")) == tools
    assert e.summary["sinks"][0]["objects"] == len(objs)


def test_samples_no_aliases(tmp_path):
    e = export(SAMPLES, tmp_path, "--no-aliases", expect_exit=EXIT_PARTIAL)
    assert_stix_ok(e.bundle_path)
    for o in e.objects:
        if o["type"] in PROFILE_TYPES:
            assert "aliases" not in o, o["id"]


def test_determinism(tmp_path, samples_export):
    again = export(SAMPLES, tmp_path, expect_exit=EXIT_PARTIAL)
    first_objs = canonical_objects(samples_export.objects)
    second_objs = canonical_objects(again.objects)
    assert len(first_objs) == len(second_objs)
    if first_objs != second_objs:
        a, b = set(first_objs), set(second_objs)
        pytest.fail("two runs differ:\nonly in run 1: %s\nonly in run 2: %s"
                    % (sorted(a - b)[:3], sorted(b - a)[:3]))


def test_ndjson_sink_matches_bundle(tmp_path):
    bundle = tmp_path / "bundle.json"
    nd = tmp_path / "objects.ndjson"
    summary = tmp_path / "s.json"
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "stix:%s" % bundle,
                    "--to", "ndjson:%s" % nd, "--summary", summary)
    assert r.returncode == EXIT_PARTIAL, r.describe()
    text = nd.read_text(encoding="utf-8")
    assert text.endswith("\n"), "last NDJSON line is not newline-terminated"
    lines = text.split("\n")[:-1]
    objs = []
    for n, line in enumerate(lines, 1):
        assert line.strip(), "blank line %d in NDJSON output" % n
        obj = json.loads(line)
        assert isinstance(obj, dict) and "type" in obj and "id" in obj, line[:200]
        assert obj["type"] != "bundle", "NDJSON must carry STIX objects, not bundles"
        objs.append(obj)
    with open(bundle, encoding="utf-8") as f:
        bundle_objs = json.load(f)["objects"]
    assert canonical_objects(objs) == canonical_objects(bundle_objs)
    s = json.loads(summary.read_text(encoding="utf-8"))
    assert [x["status"] for x in s["sinks"]] == ["ok", "ok"], s["sinks"]
    assert [x["objects"] for x in s["sinks"]] == [len(bundle_objs), len(objs)], s["sinks"]
    assert {x["sink"].split(":", 1)[0] for x in s["sinks"]} == {"stix", "ndjson"}

