"""`--state`: incremental runs, STIX versioning and revocation, per-sink checkpoints, kill -9.

The oracle for "what changed" is independent of the state store: two stateless exports (before
and after an edit of the dump) are compared object by object. A stateful run must send exactly the
objects that differ, with the id and `created` of the first version and a later `modified`, and
revoke what the edit removed. The delta bundles are then checked with the OASIS tools on the
consumer's view (the first export with the delta applied).
"""
from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest

import check_stix
from e2e_util import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, SAMPLES, canonical, load_json, run_ctiport
from medallion_server import PASSWORD, USER, post_count, read_all, start_medallion
from sim_util import running_sim

# Versioned objects; SCOs have no versions, locations and sector identities are shared.
REVOCABLE_TYPES = {"indicator", "relationship", "threat-actor", "intrusion-set", "tool",
                   "malware", "note", "report"}
# The samples keep four malformed indicator records on purpose: every run is partial (exit 3).
# Their rejection does not hold revocation back; an unreadable line does.
COMPLETE = EXIT_PARTIAL
BROKEN_LINE_FILE = "cfd8fc970baba5dc4c9d41ecbb4cb7c5de2bac5a12fd8ecb05ad9a3b1cd0830e.ndjson"


def clean_dump(tmp_path: Path) -> Path:
    """The samples without their unreadable line: a listing a run can trust to revoke from."""
    dump = tmp_path / "dump"
    shutil.copytree(SAMPLES, dump)
    path = dump / "indicators" / BROKEN_LINE_FILE
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if _is_json(line)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dump


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def indicator_files(dump: Path) -> list:
    return sorted(p for p in (dump / "indicators").iterdir() if p.suffix == ".json")


def edit_dump(dump: Path) -> dict:
    """One of each change issue 5 names: a lastSeen moved, an indicator removed, one added, a
    profile summary reworded. Returns what was done, for the messages."""
    files = indicator_files(dump)
    changed_file, removed_file = files[0], files[1]
    doc = load_json(changed_file)
    changed = doc["value"][3]
    changed["lastSeenDateTime"] = "2026-06-01T12:00:00.000Z"
    doc["value"].append({
        "@odata.type": "#microsoft.graph.security.intelligenceProfileIndicator",
        "id": "00000000-5747-4e00-8000-000000000001",
        "source": "microsoft",
        "firstSeenDateTime": "2026-05-01T00:00:00.000Z",
        "lastSeenDateTime": "2026-05-02T00:00:00.000Z",
        "artifact": {"@odata.type": "#microsoft.graph.security.hostname",
                     "id": "state-test-added.example.net"},
    })
    changed_file.write_text(json.dumps(doc), encoding="utf-8")
    doc = load_json(removed_file)
    removed = doc["value"].pop(5)
    removed_file.write_text(json.dumps(doc), encoding="utf-8")
    profiles_path = dump / "intelProfiles.json"
    profiles = load_json(profiles_path)
    profile = profiles["value"][0]
    profile["summary"]["content"] = profile["summary"]["content"] + " (Reworded in a later edition.)"
    profiles_path.write_text(json.dumps(profiles), encoding="utf-8")
    return {"changed": changed["id"], "removed": removed["id"], "summary": profile["id"]}


def export(dump: Path, *sinks, state: Path | None = None, summary: Path, extra=(),
           env_extra=None, expect=COMPLETE):
    args = ["export", "--from", "dir:%s" % dump, "--summary", summary, "--no-progress"]
    for sink in sinks:
        args += ["--to", sink]
    if state is not None:
        args += ["--state", state]
    r = run_ctiport(*args, *extra, env_extra=env_extra)
    if expect is not None:
        assert r.returncode == expect, r.describe()
    return r


def bundle_objects(path: Path) -> list:
    return load_json(path).get("objects", [])


def stateless(dump: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    export(dump, "stix:%s" % (out / "b.json"), summary=out / "s.json")
    return {o["id"]: o for o in bundle_objects(out / "b.json")}


def sink_summary(summary: Path, prefix: str) -> dict:
    return next(s for s in load_json(summary)["sinks"] if s["sink"].startswith(prefix))


def without_version(obj: dict) -> str:
    return canonical({k: v for k, v in obj.items() if k not in ("created", "modified")})


def assert_consumer_view_valid(first: dict, delta: list, where: Path) -> None:
    """The first export with the delta applied, as a consumer holds it: valid STIX, every
    reference resolved."""
    view = dict(first)
    view.update({o["id"]: o for o in delta})
    bundle = {"type": "bundle", "id": "bundle--6f6ad2a8-56a3-4dd5-8a43-d0c0dd6a9a6e",
              "objects": list(view.values())}
    path = where / "consumer-view.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    problems = check_stix.check_file(path)
    assert not problems, "\n".join(map(check_stix.format_problem, problems[:30]))


def test_an_unchanged_rerun_sends_nothing_to_any_sink(tmp_path):
    dump = clean_dump(tmp_path)
    state = tmp_path / "state.db"
    server = start_medallion(tmp_path / "medallion")
    try:
        sinks = ("stix:%s" % (tmp_path / "b.json"), "ndjson:%s" % (tmp_path / "o.ndjson"),
                 "csv:%s" % (tmp_path / "i.csv"), "taxii:" + server.collection_url())
        env = {"TAXII_USERNAME": USER, "TAXII_PASSWORD": PASSWORD}
        export(dump, *sinks, state=state, summary=tmp_path / "s1.json", env_extra=env)
        first = bundle_objects(tmp_path / "b.json")
        posts_after_first = post_count(server)
        s1 = load_json(tmp_path / "s1.json")
        assert s1["state"]["new"] == len(first) and s1["state"]["changed"] == 0, s1["state"]
        assert s1["state"].get("revocation_held") is None, s1["state"]

        export(dump, *sinks, state=state, summary=tmp_path / "s2.json", env_extra=env)
        s2 = load_json(tmp_path / "s2.json")
        assert s2["state"]["new"] == s2["state"]["changed"] == s2["state"]["revoked"] == 0
        assert s2["state"]["unchanged"] == len(first), s2["state"]
        for sink in s2["sinks"]:
            delta = sink["delta"]
            assert delta["new"] == delta["changed"] == delta["revoked"] == 0, sink
            assert delta["unchanged"] == len(first), sink
        for prefix in ("stix:", "ndjson:", "taxii:"):
            assert sink_summary(tmp_path / "s2.json", prefix)["objects"] == 0
        assert "objects" not in load_json(tmp_path / "b.json"), "the bundle should be empty"
        empty = run_ctiport("validate", tmp_path / "b.json")
        assert empty.returncode == 0, empty.describe()
        assert check_stix._run_validator(load_json(tmp_path / "b.json"), str(tmp_path / "b.json"),
                                         "empty", "bundle", False) == []
        assert (tmp_path / "o.ndjson").read_text() == ""
        assert post_count(server) == posts_after_first, "TAXII received a POST on the rerun"
        # A CSV snapshot still lists the current state.
        assert len((tmp_path / "i.csv").read_text().splitlines()) > 300
    finally:
        server.stop()


def test_the_next_run_sends_exactly_the_changes_with_later_versions_and_revocations(tmp_path):
    dump = clean_dump(tmp_path)
    before = stateless(dump, tmp_path / "before")
    state = tmp_path / "state.db"
    sink = "stix:%s" % (tmp_path / "b.json")  # one sink, the same file every run
    export(dump, sink, state=state, summary=tmp_path / "s1.json")
    first = {o["id"]: o for o in bundle_objects(tmp_path / "b.json")}
    assert {canonical(o) for o in first.values()} == {canonical(o) for o in before.values()}, \
        "the first stateful run must equal a stateless export"

    edits = edit_dump(dump)
    after = stateless(dump, tmp_path / "after")
    new_ids = set(after) - set(before)
    gone_ids = {i for i in set(before) - set(after) if before[i]["type"] in REVOCABLE_TYPES}
    changed_ids = {i for i in set(after) & set(before) if canonical(after[i]) != canonical(before[i])}
    assert new_ids and gone_ids and changed_ids, (edits, new_ids, gone_ids, changed_ids)

    export(dump, sink, state=state, summary=tmp_path / "s2.json")
    delta = bundle_objects(tmp_path / "b.json")
    by_id = {o["id"]: o for o in delta}
    assert len(by_id) == len(delta), "an object was sent twice"
    # A delta file starts with the producer identity and the marking definition, unchanged, so
    # that it stands alone; nothing else unchanged comes along.
    preamble = {i for i, o in by_id.items() if canonical(o) == canonical(first.get(i))
                and o["type"] in ("identity", "marking-definition")
                and i not in new_ids | changed_ids}
    assert len(preamble) == 2, sorted(preamble)
    for i in preamble:
        del by_id[i]
    assert set(by_id) == new_ids | changed_ids | gone_ids, (
        "unexpected: %s; missing: %s" % (sorted(set(by_id) - new_ids - changed_ids - gone_ids)[:10],
                                         sorted((new_ids | changed_ids | gone_ids) - set(by_id))[:10]))
    for i in new_ids:
        assert canonical(by_id[i]) == canonical(after[i]), i
    for i in changed_ids:
        obj, old = by_id[i], first[i]
        if "modified" in old:
            assert obj["created"] == old["created"], i
            assert obj["modified"] > old["modified"], (i, old["modified"], obj["modified"])
        assert without_version(obj) == without_version(after[i]), i
    for i in gone_ids:
        obj = by_id[i]
        assert obj.get("revoked") is True, obj
        assert obj["modified"] > first[i]["modified"], i
        assert without_version({k: v for k, v in obj.items() if k != "revoked"}) \
            == without_version(first[i]), i
    removed_relationships = [o for o in by_id.values() if o.get("revoked")
                             and o["type"] == "relationship"
                             and o.get("relationship_type") == "indicates"]
    assert removed_relationships, "the removed indicator's membership was not revoked"

    s2 = load_json(tmp_path / "s2.json")
    assert s2["state"]["revoked"] == len(gone_ids), s2["state"]
    assert s2["state"]["new"] == len(new_ids), s2["state"]
    delta_counts = s2["sinks"][0]["delta"]
    assert (delta_counts["new"], delta_counts["changed"], delta_counts["revoked"]) == (
        len(new_ids), len(changed_ids), len(gone_ids)), delta_counts
    assert_consumer_view_valid(first, delta, tmp_path)

    # Unchanged since: nothing more. --full: the whole current state, same versions.
    export(dump, sink, state=state, summary=tmp_path / "s3.json")
    assert bundle_objects(tmp_path / "b.json") == []
    export(dump, sink, state=state, summary=tmp_path / "s4.json", extra=["--full"])
    full = {o["id"]: o for o in bundle_objects(tmp_path / "b.json")}
    assert set(full) == set(after)
    for i, obj in full.items():
        expected = by_id.get(i, first.get(i))
        assert canonical(obj) == canonical(expected), "--full changed the version of %s" % i


def test_a_failed_taxii_sink_gets_its_backlog_and_the_file_sink_is_not_resent(tmp_path):
    dump = clean_dump(tmp_path)
    state = tmp_path / "state.db"
    server = start_medallion(tmp_path / "medallion")
    try:
        taxii = "taxii:" + server.collection_url()
        good = {"TAXII_USERNAME": USER, "TAXII_PASSWORD": PASSWORD}
        bad = {"TAXII_USERNAME": USER, "TAXII_PASSWORD": "not-the-password"}
        file_sink = "stix:%s" % (tmp_path / "b.json")
        export(dump, file_sink, taxii, state=state, summary=tmp_path / "s1.json", env_extra=good)
        edit_dump(dump)

        export(dump, file_sink, taxii, state=state, summary=tmp_path / "s2.json", env_extra=bad,
               expect=EXIT_FAILED)
        assert sink_summary(tmp_path / "s2.json", "taxii:")["status"] == "failed"
        assert sink_summary(tmp_path / "s2.json", "stix:")["status"] == "ok"
        run2_delta = {o["id"]: o for o in bundle_objects(tmp_path / "b.json")}
        assert run2_delta, "the file sink got no changes in run 2"

        export(dump, file_sink, taxii, state=state, summary=tmp_path / "s3.json", env_extra=good)
        assert "objects" not in load_json(tmp_path / "b.json"), "the file sink was sent again"
        taxii3 = sink_summary(tmp_path / "s3.json", "taxii:")
        file2 = sink_summary(tmp_path / "s2.json", "stix:")
        for key in ("new", "changed", "revoked"):
            assert taxii3["delta"][key] == file2["delta"][key], (taxii3, file2)
        # The collection now holds, for every object the file sink got in run 2, that version.
        held = {}
        for obj in read_all(server):
            if obj["id"] not in held or obj.get("modified", "") > held[obj["id"]].get("modified", ""):
                held[obj["id"]] = obj
        for i, obj in run2_delta.items():
            assert canonical(held.get(i)) == canonical(obj), "TAXII lacks run 2's version of %s" % i
    finally:
        server.stop()


def store_dump(state: Path) -> list:
    """The store's object versions, without run bookkeeping."""
    with closing(sqlite3.connect(state)) as db:
        (dictionary,) = db.execute("SELECT value FROM meta WHERE key = 'json_dictionary'").fetchone()
        rows = db.execute("SELECT o.id, hex(o.hash), o.revoked, v.json FROM objects o"
                          " LEFT JOIN versions v ON v.object = o.object ORDER BY o.id").fetchall()
    return [(i, digest, revoked, None if data is None else lz4_expand(data, dictionary.encode()))
            for i, digest, revoked, data in rows]


def lz4_expand(data: bytes, dictionary: bytes) -> str:
    """A stored version's JSON. `versions.json` holds its length (4 bytes, little-endian), then an
    LZ4 block whose matches may reach back into the store's dictionary: the block format, decoded
    here for want of an lz4 package."""
    size = int.from_bytes(data[:4], "little")
    out = bytearray(dictionary)
    i = 4

    def length(n: int) -> int:
        # 15 in the token: the bytes that follow add up, to the first that is not 255.
        nonlocal i
        if n == 15:
            while True:
                n += data[i]
                i += 1
                if data[i - 1] != 255:
                    break
        return n

    while True:
        token = data[i]
        i += 1
        literals = length(token >> 4)
        out += data[i:i + literals]
        i += literals
        if i == len(data):
            break
        offset = data[i] | data[i + 1] << 8
        i += 2
        start = len(out) - offset
        for k in range(length(token & 15) + 4):  # a match may overlap what it copies
            out.append(out[start + k])
    json_text = bytes(out[len(dictionary):])
    assert len(json_text) == size, "a stored version does not expand to its length"
    return json_text.decode()


@pytest.mark.parametrize("point", ["mapping", "sinks-written", "before-ack"])
def test_a_run_killed_at_any_point_converges_to_the_uninterrupted_state(tmp_path, point):
    dump = clean_dump(tmp_path)
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    for side in (reference, crashed):
        side.mkdir()
        export(dump, "stix:%s" % (side / "b.json"), "ndjson:%s" % (side / "o.ndjson"),
               state=side / "state.db", summary=side / "s1.json")
    edit_dump(dump)

    export(dump, "stix:%s" % (reference / "b.json"), "ndjson:%s" % (reference / "o.ndjson"),
           state=reference / "state.db", summary=reference / "s2.json")
    killed = export(dump, "stix:%s" % (crashed / "b.json"), "ndjson:%s" % (crashed / "o.ndjson"),
                    state=crashed / "state.db", summary=crashed / "s2.json",
                    env_extra={"CTIPORT_TEST_CRASH_AT": point}, expect=None)
    assert killed.returncode == -signal.SIGKILL, killed.describe()
    export(dump, "stix:%s" % (crashed / "b.json"), "ndjson:%s" % (crashed / "o.ndjson"),
           state=crashed / "state.db", summary=crashed / "s3.json")

    assert store_dump(crashed / "state.db") == store_dump(reference / "state.db")
    expected = sorted(canonical(o) for o in bundle_objects(reference / "b.json"))
    assert expected, "the reference run sent nothing"
    # The run after the crash delivers what the uninterrupted run delivered, version for version.
    assert sorted(canonical(o) for o in bundle_objects(crashed / "b.json")) == expected
    lines = (crashed / "o.ndjson").read_text().splitlines()
    assert sorted(canonical(json.loads(line)) for line in lines) == expected

    # And from there both go on alike: a further run sends nothing to either.
    for side in (reference, crashed):
        export(dump, "stix:%s" % (side / "b.json"), state=side / "state.db",
               summary=side / "s4.json")
        assert "objects" not in load_json(side / "b.json")


def test_a_second_run_on_a_state_file_in_use_stops_with_a_clear_error(tmp_path):
    dump = clean_dump(tmp_path)
    state = tmp_path / "state.db"
    export(dump, "stix:%s" % (tmp_path / "b.json"), state=state, summary=tmp_path / "s.json")
    with closing(sqlite3.connect(state)) as db:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        r = export(dump, "stix:%s" % (tmp_path / "b2.json"), state=state,
                   summary=tmp_path / "s2.json", expect=EXIT_FAILED)
        db.rollback()
    assert any("in use by another ctiport run" in line for line in r.stderr_lines), r.describe()


def remove_profile(dump: Path, index: int) -> dict:
    """The profile leaves the listing, and its indicators with it (as in a live listing; a dump
    with an indicators file of an unlisted profile is inconsistent and holds revocation back)."""
    profiles_path = dump / "intelProfiles.json"
    profiles = load_json(profiles_path)
    profile = profiles["value"].pop(index)
    profiles_path.write_text(json.dumps(profiles), encoding="utf-8")
    for path in (dump / "indicators").glob(quote(profile["id"], safe="") + ".*"):
        path.rename(dump / path.name)
    return profile


def test_a_vanished_profile_is_revoked_with_what_only_it_listed_and_comes_back_as_a_new_version(
        tmp_path):
    dump = clean_dump(tmp_path)
    state = tmp_path / "state.db"
    sink = "stix:%s" % (tmp_path / "b.json")
    before = stateless(dump, tmp_path / "before")
    export(dump, sink, state=state, summary=tmp_path / "s1.json")
    first = {o["id"]: o for o in bundle_objects(tmp_path / "b.json")}
    original = (dump / "intelProfiles.json").read_text(encoding="utf-8")

    gone = remove_profile(dump, 1)
    indicators_file = next(dump.glob(quote(gone["id"], safe="") + ".*"))
    after = stateless(dump, tmp_path / "after")
    gone_ids = {i for i in set(before) - set(after) if before[i]["type"] in REVOCABLE_TYPES}
    assert any(before[i]["type"] == "threat-actor" for i in gone_ids), gone["id"]
    assert any(before[i]["type"] == "indicator" for i in gone_ids), "no indicator only it listed"
    export(dump, sink, state=state, summary=tmp_path / "s2.json")
    revoked = {o["id"]: o for o in bundle_objects(tmp_path / "b.json") if o.get("revoked")}
    assert set(revoked) == gone_ids, (sorted(set(revoked) ^ gone_ids)[:10])
    for i, obj in revoked.items():
        assert obj["modified"] > first[i]["modified"] and obj["created"] == first[i]["created"]
    assert load_json(tmp_path / "s2.json")["state"].get("revocation_held") is None

    # Listed again: the same ids, not revoked, each a version later than its revocation.
    (dump / "intelProfiles.json").write_text(original, encoding="utf-8")
    indicators_file.rename(dump / "indicators" / indicators_file.name)
    export(dump, sink, state=state, summary=tmp_path / "s3.json")
    back = {o["id"]: o for o in bundle_objects(tmp_path / "b.json")}
    for i in gone_ids:
        assert i in back and not back[i].get("revoked"), i
        assert back[i]["modified"] > revoked[i]["modified"], i
        assert without_version(back[i]) == without_version(first[i]), i


def test_a_filtered_run_revokes_nothing_it_did_not_look_at(tmp_path):
    dump = clean_dump(tmp_path)
    state = tmp_path / "state.db"
    sink = "stix:%s" % (tmp_path / "b.json")
    export(dump, sink, state=state, summary=tmp_path / "s1.json")
    first = {o["id"]: o for o in bundle_objects(tmp_path / "b.json")}
    gone = remove_profile(dump, 1)
    actor_ids = {i for i, o in first.items() if o["type"] == "threat-actor"}
    doc_path = indicator_files(dump)[0]
    doc = load_json(doc_path)
    doc["value"].pop(0)
    doc_path.write_text(json.dumps(doc), encoding="utf-8")

    # An indicator filter narrows every listing: nothing at all is revoked. A profile selection
    # lists the selected profiles completely: their departed indicators go, unlisted profiles
    # (the removed actor among them) stay.
    for flags, held in ((["--source", "microsoft"], "indicator filters"),
                        (["--kind", "tool"], "unlisted profiles were not revoked")):
        r = export(dump, sink, state=state, summary=tmp_path / "s.json", extra=flags, expect=None)
        assert r.returncode in (EXIT_OK, EXIT_PARTIAL), r.describe()
        summary = load_json(tmp_path / "s.json")
        assert held in summary["state"]["revocation_held"], summary["state"]
        revoked = [o for o in bundle_objects(tmp_path / "b.json") if o.get("revoked")]
        if "--source" in flags:
            assert revoked == [], [o["id"] for o in revoked]
        else:
            assert revoked, "the indicator that left the tool profile was not revoked"
            assert not [o for o in revoked if o["id"] in actor_ids], gone["id"]


def test_a_filtered_run_after_a_killed_one_keeps_the_sink_position(tmp_path):
    dump = clean_dump(tmp_path)
    state = tmp_path / "state.db"
    sink = "stix:%s" % (tmp_path / "b.json")
    export(dump, sink, state=state, summary=tmp_path / "s1.json")
    first = {o["id"]: o for o in bundle_objects(tmp_path / "b.json")}
    edit_dump(dump)
    after = stateless(dump, tmp_path / "after")
    # Killed after the mapping stored part of the new versions, before any sink committed.
    killed = export(dump, sink, state=state, summary=tmp_path / "s2.json", expect=None,
                    env_extra={"CTIPORT_TEST_CRASH_AT": "mapping"})
    assert killed.returncode == -signal.SIGKILL, killed.describe()
    # A run of one kind does not carry the other kind's new versions: not acknowledged.
    r = export(dump, sink, state=state, summary=tmp_path / "s3.json", extra=["--kind", "tool"],
               expect=None)
    assert r.returncode in (EXIT_OK, EXIT_PARTIAL), r.describe()
    assert load_json(tmp_path / "s3.json")["sinks"][0]["acknowledged"] is False
    # The next complete run sends every change since run 1: nothing was lost on the way.
    export(dump, sink, state=state, summary=tmp_path / "s4.json")
    assert load_json(tmp_path / "s4.json")["sinks"][0]["acknowledged"] is True
    got = {o["id"]: o for o in bundle_objects(tmp_path / "b.json")}
    for i, obj in after.items():
        if i not in first or without_version(first[i]) != without_version(obj):
            assert i in got and without_version(got[i]) == without_version(obj), i


def live(sim, sink, state, summary, *extra, expect=COMPLETE):
    r = run_ctiport("export", *sim.source_args(), "--to", sink, "--state", state,
                    "--summary", summary, "--no-progress", "--rate", "200", *extra,
                    env_extra=sim.env())
    if expect is not None:
        assert r.returncode == expect, r.describe()
    return r


def test_live_incremental_runs_match_dump_runs_and_a_failed_listing_changes_nothing(tmp_path):
    """Against ctiport-sim (paged, throttled, with transient faults): the live source's deltas
    are the dump source's, and a run whose indicator pages fail revokes and acknowledges nothing."""
    dump = clean_dump(tmp_path)
    live_state, dump_state = tmp_path / "live.db", tmp_path / "dump.db"
    live_sink, dump_sink = ("stix:%s" % (tmp_path / name) for name in ("live.json", "dump.json"))
    sim_flags = ("--page-size", "7", "--rate", "60", "--retry-after-format", "fractional",
                 "--fault-after", "3", "--seed", "5")

    def both(step: str):
        with running_sim("--dump", dump, *sim_flags) as sim:
            live(sim, live_sink, live_state, tmp_path / ("live-%s.json" % step))
        export(dump, dump_sink, state=dump_state, summary=tmp_path / ("dump-%s.json" % step))
        got = [sorted(canonical(o) for o in bundle_objects(tmp_path / name))
               for name in ("live.json", "dump.json")]
        assert got[0] == got[1], "the live delta differs from the dump delta in step %s" % step
        return got[0]

    assert len(both("first")) > 700
    assert both("unchanged") == []
    edit_dump(dump)
    # Indicator pages that keep failing: the run fails, nothing is revoked or acknowledged.
    with running_sim("--dump", dump, "--page-size", "5", "--fault-after", "12", "--fault-rate", "1",
                     "--faults", "503") as sim:
        failed = live(sim, live_sink, live_state, tmp_path / "live-failed.json", "--max-attempts", "2",
                      expect=EXIT_FAILED)
    summary = load_json(tmp_path / "live-failed.json")
    assert summary["state"]["revoked"] == 0, summary["state"]
    assert summary["sinks"][0]["status"] == "failed", failed.describe()
    delta = both("edited")
    assert any(o.get("revoked") for o in map(json.loads, delta)), "no revocation in the delta"
