"""Source-side hardening (issue 10, items 2, 3, 4, 6, 7 and the source side of 9): what could not
be read is never exported as empty or revoked as gone, a listing unreadable from its first byte
fails the run and leaves earlier outputs alone, dates the consumers cannot hold are rejected, and
a record id cannot forge a log line.

Each test asserts the exit code and the outputs (docs/contracts.md, "When the source cannot be
read"). A 404 from Graph on a listed profile's indicators is covered by the Rust test
`graph::walk::tests::a_404_on_a_listed_profiles_indicators_is_a_rejection_naming_it` against a
loopback server until ctiport-sim can answer one (it serves every listed profile).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

import check_stix
from e2e_util import (EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, assert_stix_ok, load_json,
                      run_ctiport)
from misp_oracle import misp_problems
from sim_util import running_sim

SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def pct(profile_id: str) -> str:
    """ctiport's file name for a profile id (docs/contracts.md, "Dump layout")."""
    return "".join(chr(b) if chr(b) in SAFE else "%%%02X" % b for b in profile_id.encode())


def profile(id_: str, kind: str = "actor", **extra) -> dict:
    return {"id": id_, "kind": kind, "title": "Profile %s" % id_,
            "firstActiveDateTime": "2021-01-01T00:00:00Z", **extra}


def hostname(id_: str, host: str, first="2024-01-01T00:00:00Z", last=None) -> dict:
    return {"id": id_, "source": "microsoft", "firstSeenDateTime": first, "lastSeenDateTime": last,
            "artifact": {"@odata.type": "#microsoft.graph.security.hostname", "id": host}}


def write_dump(root: Path, profiles: list, indicators: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "intelProfiles.json").write_text(json.dumps({"value": profiles}), encoding="utf-8")
    (root / "indicators").mkdir(exist_ok=True)
    for profile_id, records in indicators.items():
        path = root / "indicators" / ("%s.json" % pct(profile_id))
        path.write_text(json.dumps({"value": records}), encoding="utf-8")
    return root


def three_profiles(root: Path) -> Path:
    return write_dump(root, [profile("p1"), profile("p2", "tool"), profile("p3")], {
        "p1": [hostname("i1", "one.example"), hostname("i2", "two.example")],
        "p2": [hostname("i3", "three.example")],
        "p3": [hostname("i4", "four.example")],
    })


def export(dump, out: Path, *extra, state: Path | None = None, sinks=None):
    out.mkdir(parents=True, exist_ok=True)
    sinks = sinks or ["stix:%s" % (out / "bundle.json")]
    args = ["export", "--from", "dir:%s" % dump, "--summary", out / "summary.json", "--no-progress"]
    for sink in sinks:
        args += ["--to", sink]
    if state is not None:
        args += ["--state", state]
    return run_ctiport(*args, *extra)


def revoked_objects(bundle: Path) -> list:
    return [o for o in load_json(bundle).get("objects", []) if o.get("revoked")]


def rejection(summary: dict, id_: str) -> dict:
    found = [r for r in summary["rejected_records"] if r["id"] == id_]
    assert found, "no rejection of %r in %s" % (id_, summary["rejected_records"])
    return found[0]


# --- item 3: a directory or FIFO where an indicators file should be ------------------------------


def test_a_directory_or_fifo_for_indicators_is_rejected_and_revokes_nothing(tmp_path):
    dump = three_profiles(tmp_path / "dump")
    state = tmp_path / "state.db"
    first = export(dump, tmp_path / "run1", state=state)
    assert first.returncode == EXIT_OK, first.describe()

    (dump / "indicators" / "p1.json").unlink()
    (dump / "indicators" / "p1.json").mkdir()
    (dump / "indicators" / "p3.json").unlink()
    os.mkfifo(dump / "indicators" / "p3.json")
    second = export(dump, tmp_path / "run2", state=state)

    assert second.returncode == EXIT_PARTIAL, second.describe()
    summary = load_json(tmp_path / "run2" / "summary.json")
    for name, kind, profile_id in [("p1.json", "a directory", "p1"), ("p3.json", "a FIFO", "p3")]:
        entry = rejection(summary, "indicators/%s" % name)
        assert entry["record"] == "file", entry
        assert "not a regular file (%s)" % kind in entry["reason"], entry
        assert "'%s'" % profile_id in entry["reason"], entry
    # What could not be read is not gone: nothing of p1 or p3 is revoked.
    assert summary["state"]["revoked"] == 0, summary["state"]
    assert "revocation_held" in summary["state"], summary["state"]
    assert revoked_objects(tmp_path / "run2" / "bundle.json") == []
    assert summary["indicators"] == 1, summary  # p2's, which could be read


# --- item 4: a listing unreadable from its first byte --------------------------------------------


UNREADABLE_LISTINGS = {
    "empty": (b"", "the file is empty"),
    "top-level-array": (json.dumps([profile("p1")]).encode(),
                        'top-level value is an array, expected an object with "value"'),
    "no-value": (json.dumps({"items": [profile("p1")]}).encode(), 'no "value" member'),
    "utf16": (("\ufeff" + json.dumps({"value": [profile("p1")]})).encode("utf-16-le"), "UTF-16"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE_LISTINGS))
def test_a_listing_unreadable_from_byte_0_fails_and_keeps_earlier_outputs(tmp_path, case):
    dump = three_profiles(tmp_path / "dump")
    out = tmp_path / "out"
    sinks = ["stix:%s" % (out / "bundle.json"), "csv:%s" % (out / "indicators.csv"),
             "misp-feed:%s" % (out / "feed")]
    state = tmp_path / "state.db"
    first = export(dump, out, state=state, sinks=sinks)
    assert first.returncode == EXIT_OK, first.describe()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "summary.json"}
    assert len(before) >= 4, sorted(before)

    text, reason = UNREADABLE_LISTINGS[case]
    (dump / "intelProfiles.json").write_bytes(text)
    second = export(dump, out, state=state, sinks=sinks)

    assert second.returncode == EXIT_FAILED, second.describe()
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "summary.json"}
    assert after == before, "outputs changed by a run whose listing could not be read"
    message = [line for line in second.stderr_lines if "intelProfiles.json" in line]
    assert any(reason in line for line in message), second.describe()
    summary = load_json(out / "summary.json")
    assert summary["exit_code"] == EXIT_FAILED
    assert reason in summary["source_error"] and "intelProfiles.json" in summary["source_error"]
    assert summary["state"]["revoked"] == 0, summary["state"]


def test_an_empty_but_well_formed_listing_is_not_a_source_failure(tmp_path):
    dump = write_dump(tmp_path / "dump", [], {})
    r = export(dump, tmp_path / "out")
    assert r.returncode == EXIT_OK, r.describe()
    assert load_json(tmp_path / "out" / "summary.json")["profiles"] == 0


def test_a_utf8_bom_is_accepted_in_every_dump_file(tmp_path):
    plain = three_profiles(tmp_path / "plain")
    bom = tmp_path / "bom"
    shutil.copytree(plain, bom)
    for path in [bom / "intelProfiles.json", *(bom / "indicators").iterdir()]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    # And an NDJSON file with one, as PowerShell's Out-File -Encoding utf8 writes it.
    (bom / "indicators" / "p3.json").unlink()
    (bom / "indicators" / "p3.ndjson").write_bytes(
        b"\xef\xbb\xbf" + json.dumps(hostname("i4", "four.example")).encode() + b"\r\n")

    expected = export(plain, tmp_path / "a")
    got = export(bom, tmp_path / "b")
    assert expected.returncode == EXIT_OK, expected.describe()
    assert got.returncode == EXIT_OK, got.describe()
    assert load_json(tmp_path / "b" / "bundle.json")["objects"] == \
        load_json(tmp_path / "a" / "bundle.json")["objects"]


# --- item 2: profile ids that are dot segments, fetched live -------------------------------------


def test_dot_profile_ids_are_fetched_live_and_nothing_is_revoked(tmp_path):
    """`.` and `..` used to be resolved away by the URL parser: the run asked Graph for another
    resource, got a 404, exported the profiles without indicators, and `--state` revoked them."""
    dump = write_dump(tmp_path / "dump", [profile("."), profile(".."), profile("x")], {
        ".": [hostname("i-dot", "dot.example")],
        "..": [hostname("i-dotdot", "dotdot.example")],
        "x": [hostname("i-x", "x.example")],
    })
    state = tmp_path / "state.db"
    first = export(dump, tmp_path / "run1", state=state)
    assert first.returncode == EXIT_OK, first.describe()
    assert load_json(tmp_path / "run1" / "summary.json")["indicators"] == 3

    with running_sim("--dump", dump) as sim:
        out = tmp_path / "run2"
        out.mkdir()
        live = run_ctiport("export", *sim.source_args(), "--to", "stix:%s" % (out / "bundle.json"),
                           "--summary", out / "summary.json", "--state", state, "--no-progress",
                           env_extra=sim.env())
    assert live.returncode == EXIT_OK, live.describe()
    summary = load_json(out / "summary.json")
    assert summary["indicators"] == 3, summary
    assert summary["rejected"] == 0, summary["rejected_records"]
    assert summary["state"]["revoked"] == 0, summary["state"]
    assert revoked_objects(out / "bundle.json") == []


# --- item 6: dates the consumers cannot represent ------------------------------------------------


def test_unrepresentable_dates_are_rejected_and_the_outputs_pass_the_oracles(tmp_path):
    dump = write_dump(tmp_path / "dump", [
        profile("p1"),
        profile("p-year0", firstActiveDateTime="0000-01-01T00:00:00Z"),
    ], {
        "p1": [
            hostname("i-ok", "ok.example"),
            hostname("i-year0", "year0.example", first="0000-01-01T00:00:00Z"),
            hostname("i-leap", "leap.example", last="2016-12-31T23:59:60Z"),
        ],
    })
    out = tmp_path / "out"
    r = export(dump, out, sinks=["stix:%s" % (out / "bundle.json"), "misp-feed:%s" % (out / "feed")])
    assert r.returncode == EXIT_PARTIAL, r.describe()
    summary = load_json(out / "summary.json")
    assert summary["rejected"] == 3, summary["rejected_records"]
    for id_, field in [("p-year0", "firstActiveDateTime"), ("i-year0", "firstSeenDateTime"),
                       ("i-leap", "lastSeenDateTime")]:
        reason = rejection(summary, id_)["reason"]
        assert field in reason and "cannot represent" in reason, reason
    assert_stix_ok(out / "bundle.json")
    events = [p for p in (out / "feed").glob("*.json") if p.name != "manifest.json"]
    assert events
    for path in events:
        assert misp_problems(load_json(path)) == [], path


def test_validate_applies_the_validators_timestamp_rules(tmp_path):
    identity = "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff"
    bundle = {"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [
        {"type": "identity", "spec_version": "2.1", "id": identity, "name": "P",
         "created": "0000-05-01T00:00:00.000Z", "modified": "0000-05-01T00:00:00.000Z",
         "identity_class": "organization"},
        {"type": "indicator", "spec_version": "2.1",
         "id": "indicator--e2e1a340-4415-4ba8-9671-f7343fbf0836", "created_by_ref": identity,
         "created": "2016-12-31T00:00:00.000Z", "modified": "2016-12-31T00:00:00.000Z",
         "pattern": "[domain-name:value = 'leap.example']", "pattern_type": "stix",
         "valid_from": "2016-12-31T00:00:00.000Z", "valid_until": "2016-12-31T23:59:60Z"},
    ]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    # The oracle refuses both dates ...
    assert check_stix.check_paths([path]), "stix2-validator accepted year 0000 and second 60"
    # ... and so does ctiport's own check.
    r = run_ctiport("validate", path)
    assert r.returncode == EXIT_FAILED, r.describe() + r.stdout
    assert "created '0000-05-01T00:00:00.000Z'" in r.stdout, r.stdout
    assert "valid_until '2016-12-31T23:59:60Z'" in r.stdout, r.stdout


# --- item 7: control characters in logged values ------------------------------------------------


FORGED_ID = "i1\nERROR forged line\r\x00\x1b[31m"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s")


def forged_dump(root: Path) -> Path:
    return write_dump(root, [profile("p1")], {
        "p1": [hostname("ok", "ok.example"), hostname(FORGED_ID, "x.example", first="soon")],
    })


def test_a_record_id_cannot_forge_a_text_log_line(tmp_path):
    r = export(forged_dump(tmp_path / "dump"), tmp_path / "out", "--log-level", "info")
    assert r.returncode == EXIT_PARTIAL, r.describe()
    lines = r.stderr.split("\n")
    assert lines[-1] == "", "stderr does not end with a newline"
    for line in lines[:-1]:
        assert LOG_LINE.match(line), "not a log line of its own: %r" % line
    assert not any(c in r.stderr for c in "\r\x00\x1b"), repr(r.stderr)
    forged = [line for line in lines if "forged" in line]
    assert len(forged) == 1, forged
    assert forged[0].startswith(tuple("0123456789")) and " WARN " in forged[0], forged
    assert r"i1\nERROR forged line\r\u{0}\u{1b}[31m" in forged[0], forged
    # The data itself is not altered: the summary has the id as the source gave it.
    assert rejection(load_json(tmp_path / "out" / "summary.json"), FORGED_ID)


def test_json_logs_carry_the_id_verbatim(tmp_path):
    r = export(forged_dump(tmp_path / "dump"), tmp_path / "out", "--log-format", "json")
    assert r.returncode == EXIT_PARTIAL, r.describe()
    events = [json.loads(line) for line in r.stderr.splitlines()]
    assert any(event.get("id") == FORGED_ID for event in events), events


# --- item 9, source side -------------------------------------------------------------------------


def test_a_profile_listed_twice_is_warned_about_by_its_id(tmp_path):
    dump = write_dump(tmp_path / "dump", [profile("dup"), profile("dup")], {})
    r = export(dump, tmp_path / "out")
    assert r.returncode == EXIT_OK, r.describe()
    warned = [line for line in r.stderr_lines if "listed twice" in line]
    assert len(warned) == 1 and warned[0].endswith(" profile=dup"), warned
    assert "Some(" not in r.stderr


def test_both_listing_files_are_an_error_naming_both(tmp_path):
    dump = three_profiles(tmp_path / "dump")
    (dump / "intelProfiles.ndjson").write_text(json.dumps(profile("p9")) + "\n", encoding="utf-8")
    r = export(dump, tmp_path / "out")
    assert r.returncode == EXIT_USAGE, r.describe()
    assert "intelProfiles.json" in r.stderr and "intelProfiles.ndjson" in r.stderr, r.describe()
    assert not (tmp_path / "out" / "bundle.json").exists()


def test_numbers_beyond_f64_do_not_abort_the_listing_and_numeric_ids_keep_their_text(tmp_path):
    dump = tmp_path / "dump"
    (dump / "indicators").mkdir(parents=True)
    (dump / "intelProfiles.json").write_text(
        '{"@odata.count": 1e999, "value": ['
        '{"id": "p1", "kind": "actor", "title": "A", "x": {"huge": 1e400}},'
        '{"id": 123456789012345678901234567890, "kind": "tool", "title": "B"}]}',
        encoding="utf-8")
    (dump / "indicators" / "123456789012345678901234567890.json").write_text(
        json.dumps({"value": [hostname("i1", "n.example")]}), encoding="utf-8")
    r = export(dump, tmp_path / "out")
    assert r.returncode == EXIT_OK, r.describe()
    summary = load_json(tmp_path / "out" / "summary.json")
    assert (summary["profiles"], summary["indicators"]) == (2, 1), summary


@pytest.mark.parametrize("option", ["--graph-url", "--authority-url"])
def test_credentials_in_graph_urls_are_refused_without_echoing_them(tmp_path, option):
    url = {"--graph-url": "https://user:Pa55-word@127.0.0.1:9/v1.0",
           "--authority-url": "https://user:Pa55-word@127.0.0.1:9"}[option]
    r = run_ctiport("export", "--from", "graph", option, url, "--to",
                    "stix:%s" % (tmp_path / "b.json"), "--no-progress",
                    env_extra={"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c",
                               "AZURE_CLIENT_SECRET": "s"})
    assert r.returncode == EXIT_USAGE, r.describe()
    assert option in r.stderr and "credentials" in r.stderr, r.describe()
    assert "Pa55-word" not in r.stderr + r.stdout
