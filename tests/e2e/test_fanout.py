"""One run, four sinks: `--to stix:… --to taxii:… --to misp-feed:… --to csv:…` delivers the same
indicators to every sink, counted per sink in the summary, from one fetch and one mapping."""
from __future__ import annotations

import csv
import json

import pytest

from e2e_util import EXIT_FAILED, EXIT_PARTIAL, SAMPLES, by_type, load_json, relationships, run_ctiport
from medallion_server import PASSWORD, USER, read_all, start_medallion


@pytest.fixture
def taxii_server(tmp_path):
    server = start_medallion(tmp_path / "medallion", max_content_length=50000)
    try:
        yield server
    finally:
        server.stop()


def test_four_sinks_receive_the_same_indicators(tmp_path, taxii_server):
    out = tmp_path / "out"
    run = run_ctiport(
        "export", "--from", "dir:%s" % SAMPLES, "--to", "stix:%s" % (out / "bundle.json"),
        "--to", "taxii:" + taxii_server.collection_url(), "--to", "misp-feed:%s/" % (out / "feed"),
        "--to", "csv:%s" % (out / "indicators.csv"), "--csv-columns", "value,type,profile_id,stix_id,indicator_id",
        "--summary", out / "s.json", "--no-progress", env_extra={"TAXII_USERNAME": USER, "TAXII_PASSWORD": PASSWORD})
    assert run.returncode == EXIT_PARTIAL, run.describe()
    summary = load_json(out / "s.json")
    sinks = {s["sink"].split(":", 1)[0]: s for s in summary["sinks"]}
    assert set(sinks) == {"stix", "taxii", "misp-feed", "csv"}, summary["sinks"]
    assert all(s["status"] == "ok" for s in sinks.values()), summary["sinks"]
    # The summary counts the same indicator records for every sink …
    assert {s["indicators"] for s in sinks.values()} == {summary["indicators"]}, summary["sinks"]

    # … and each output holds them.
    bundle = load_json(out / "bundle.json")["objects"]
    occurrences = relationships(bundle, "indicates")
    assert len(occurrences) == summary["indicators"]
    stix_ids = {o["id"] for o in bundle}
    taxii_ids = {o["id"] for o in read_all(taxii_server)}
    assert taxii_ids == stix_ids
    assert sinks["taxii"]["objects"] == sinks["stix"]["objects"] == len(bundle)

    with open(out / "indicators.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["indicators"] == sinks["csv"]["objects"]
    indicator_of = {o["id"]: o for o in by_type(bundle, "indicator")}
    assert sorted((r["stix_id"], r["profile_id"]) for r in rows) == sorted(
        (rel["source_ref"], next(ref["external_id"] for ref in profile["external_references"]))
        for rel in occurrences
        for profile in [next(o for o in bundle if o["id"] == rel["target_ref"])])
    assert {r["stix_id"] for r in rows} == set(indicator_of)

    events = [json.loads(p.read_text(encoding="utf-8"))["Event"] for p in (out / "feed").glob("*-*.json")]
    attributes = [a for e in events for a in e.get("Attribute", [])]
    assert len(attributes) == sinks["misp-feed"]["objects"]
    # MISP merges what it would store twice within one event, so attributes ≤ records; each
    # record's MDTI indicator id is in an attribute's comment.
    comments = " ".join(a.get("comment", "") for a in attributes)
    assert all(r["indicator_id"] for r in rows)
    missing = [r["indicator_id"] for r in rows if r["indicator_id"] not in comments]
    assert not missing, missing[:5]


def test_a_failing_sink_fails_the_run_but_not_the_others(tmp_path, taxii_server):
    out = tmp_path / "out"
    run = run_ctiport(
        "export", "--from", "dir:%s" % SAMPLES, "--to", "stix:%s" % (out / "bundle.json"),
        "--to", "taxii:" + taxii_server.collection_url(), "--to", "csv:%s" % (out / "indicators.csv"),
        "--summary", out / "s.json", "--no-progress",
        env_extra={"TAXII_USERNAME": USER, "TAXII_PASSWORD": "wrong-" + PASSWORD})
    assert run.returncode == EXIT_FAILED, run.describe()
    summary = load_json(out / "s.json")
    status = {s["sink"].split(":", 1)[0]: s["status"] for s in summary["sinks"]}
    assert status == {"stix": "ok", "taxii": "failed", "csv": "ok"}, summary["sinks"]
    assert (out / "bundle.json").is_file() and (out / "indicators.csv").is_file()
