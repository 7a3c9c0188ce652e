"""`--to misp-feed:<dir>` across runs: how changes and removals reach a MISP instance that pulls
the feed (reference misp.md §4.2-4.3). MISP fetches a known event again only when the manifest's
`timestamp` is newer than its copy, then merges it with `Event::_edit`: an attribute is updated
only when its `timestamp` is newer than its copy, and one the file no longer holds is kept, so a
removed indicator must come back with `"deleted": true`.

The dump is a copy of samples/mdti that the tests edit between runs (one indicator removed from a
profile, that profile's description and summary reworded). Every event file is checked with
PyMISP (misp_oracle.misp_problems, as in test_misp_feed.py), and a pulling MISP is played by the
MISP stand-in (misp_standin.py, MISP's add and edit semantics): the feed is "pulled" the way
`Feed::getNewEventUuids` does it (unknown events added, known ones edited when the manifest's
timestamp is newer than the local copy), and the instance must end up holding what the feed holds.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid as uuidlib
from pathlib import Path

import pytest

from e2e_util import EXIT_PARTIAL, SAMPLES, load_json, run_ctiport
from misp_oracle import misp_problems
from misp_standin import StandIn, start_standin

KEY = "ctiportE2eFeedKey0123456789abcdefABCDEF0"
# ctiport's namespace and naming scheme for MISP event uuids (docs/sinks/misp.md, as
# test_misp_feed.py).
NAMESPACE = uuidlib.UUID("6f1b3c2e-9a4d-4e57-b1c8-2d7e5f90a3b6")
INDICATOR_IDS_RE = re.compile(r"^MDTI indicators? (.*?)(?:\. |$)")
REVISION = " Revised wording (ctiport e2e)."


# --- the dump --------------------------------------------------------------------------------


def copy_samples(root: Path) -> Path:
    dump = root / "dump"
    shutil.copytree(SAMPLES, dump)
    return dump


def indicator_file(dump: Path, profile_id: str) -> Path:
    """The profile's indicator file (`indicators/<percent-encoded id>.json` or `.ndjson`)."""
    for path in (dump / "indicators").iterdir():
        if urllib.parse.unquote(path.stem) == profile_id:
            return path
    raise AssertionError("no indicator file for profile %r" % profile_id)


def ndjson_record(line: str) -> dict | None:
    """One line of an .ndjson indicator file; None for a blank or malformed one (the samples hold
    malformed records on purpose)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def read_indicators(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ndjson":
        return [r for r in map(ndjson_record, text.splitlines()) if r is not None]
    return [r for r in json.loads(text)["value"] if isinstance(r, dict)]


def remove_indicator(path: Path, indicator_id: str) -> None:
    if path.suffix == ".ndjson":
        lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                 if (ndjson_record(line) or {}).get("id") != indicator_id]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    document = json.loads(path.read_text(encoding="utf-8"))
    document["value"] = [i for i in document["value"]
                         if not (isinstance(i, dict) and i.get("id") == indicator_id)]
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def reword_profile(dump: Path, profile_id: str) -> str:
    """Rewords the profile's description and summary (no date moves); returns the text the
    EventReport shows (the description, or the summary when there is none)."""
    path = dump / "intelProfiles.json"
    document = load_json(path)
    [profile] = [p for p in document["value"] if p["id"] == profile_id]
    for field in ("description", "summary"):
        if profile.get(field):
            profile[field]["content"] += REVISION
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return (profile.get("description") or profile["summary"])["content"]


# --- one export ------------------------------------------------------------------------------


class Feed:
    """`ctiport export` of a dump to a MISP feed directory."""

    def __init__(self, dump: Path, directory: Path, *extra, expect_exit: int = EXIT_PARTIAL):
        self.dir = directory
        self.summary_path = directory.parent / ("%s-summary.json" % directory.name)
        self.run = run_ctiport("export", "--from", "dir:%s" % dump, "--to", "misp-feed:%s" % directory,
                               "--summary", self.summary_path, "--no-progress", *extra)
        assert self.run.returncode == expect_exit, self.run.describe()

    @property
    def manifest(self) -> dict:
        return load_json(self.dir / "manifest.json")

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())}

    def events(self) -> dict[str, dict]:
        return {p.stem: load_json(p)["Event"] for p in self.dir.glob("*.json")
                if p.name != "manifest.json"}

    def hashes(self) -> list[list[str]]:
        with open(self.dir / "hashes.csv", newline="", encoding="utf-8") as f:
            return list(csv.reader(f))

    def sink(self) -> dict:
        return next(s for s in load_json(self.summary_path)["sinks"]
                    if s["sink"].startswith("misp-feed:"))


def assert_feed_consistent(feed: Feed) -> None:
    """Every event file passes PyMISP and MISP's value rules, the manifest lists exactly the
    event files with their timestamps, hashes.csv lists exactly the live attributes, the summary
    counts them, and no event is older than what it holds."""
    events = feed.events()
    manifest = feed.manifest
    assert sorted(manifest) == sorted(events)
    failures = {}
    expected_hashes = []
    for uuid, event in events.items():
        problems = misp_problems({"Event": event})
        if problems:
            failures[uuid] = problems
        assert manifest[uuid]["timestamp"] == int(event["timestamp"]), uuid
        for item in event["Attribute"] + event.get("EventReport", []):
            assert int(item["timestamp"]) <= int(event["timestamp"]), (uuid, item)
        expected_hashes += [[hashlib.md5(a["value"].encode()).hexdigest(), uuid]
                            for a in event["Attribute"] if not a["deleted"]]
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)
    assert sorted(feed.hashes()) == sorted(expected_hashes)
    assert feed.sink()["objects"] == len(expected_hashes)
    assert not list(feed.dir.glob(".*")), "staging left behind"


# --- a pulling MISP --------------------------------------------------------------------------


@pytest.fixture
def standin(tmp_path):
    server = start_standin(tmp_path / "standin", KEY)
    try:
        yield server
    finally:
        server.stop()


def post(server: StandIn, path: str, body: dict) -> int:
    request = urllib.request.Request(server.url + path.lstrip("/"), data=json.dumps(body).encode(),
                                     method="POST",
                                     headers={"Authorization": KEY, "Accept": "application/json",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def pull(server: StandIn, feed: Feed) -> list[str]:
    """What a MISP instance does with the feed (Feed::getNewEventUuids, misp.md §4.2): adds the
    events it does not know, edits (Event::_edit) those whose manifest timestamp is newer than its
    copy, leaves the rest. Returns the uuids fetched."""
    fetched = []
    known = server.state()["events"]
    for uuid, entry in sorted(feed.manifest.items()):
        document = load_json(feed.dir / ("%s.json" % uuid))
        if uuid not in known:
            status = post(server, "/events/add", document)
        elif int(known[uuid]["timestamp"]) < entry["timestamp"]:
            status = post(server, "/events/edit/%s" % uuid, document)
        else:
            continue
        assert status == 200, (uuid, status, server.log()[-2000:])
        fetched.append(uuid)
    return fetched


def assert_instance_holds_the_feed(server: StandIn, feed: Feed) -> None:
    """After a pull, the instance's copy of every feed event holds exactly the feed's live
    attributes (as the feed has them) and its report, at the feed's timestamp."""
    state = server.state()
    for kind in ("dropped", "rewritten", "collapsed", "problems", "tags_not_attached"):
        assert not state[kind], (kind, state[kind][:5])
    for uuid, event in feed.events().items():
        copy = state["events"][uuid]
        assert int(copy["timestamp"]) == int(event["timestamp"]), uuid
        assert copy["info"] == event["info"]

        def view(attributes):
            return sorted((a["uuid"], a["value"], a["comment"], bool(a["deleted"])) for a in attributes)

        live = [a for a in event["Attribute"] if not a["deleted"]]
        assert view(a for a in copy["Attribute"] if not a["deleted"]) == view(live), uuid
        # Every attribute the feed retracts is retracted on the instance too.
        retracted = {a["uuid"] for a in event["Attribute"] if a["deleted"]}
        assert {a["uuid"] for a in copy["Attribute"] if a["deleted"]} >= retracted, uuid
        reports = [(r["uuid"], r["content"]) for r in copy["EventReport"] if not r["deleted"]]
        assert reports == [(r["uuid"], r["content"]) for r in event.get("EventReport", [])], uuid


# --- choosing what to change -----------------------------------------------------------------


def indicator_ids(attribute: dict) -> list[str]:
    match = INDICATOR_IDS_RE.match(attribute["comment"])
    assert match, attribute["comment"]
    return [part.split(" (")[0] for part in match.group(1).split("; ")]


def event_uuid(profile_id: str, part: int = 1) -> str:
    name = "misp-event|%s" % profile_id if part == 1 else "misp-event|%s|part|%d" % (profile_id, part)
    return str(uuidlib.uuid5(NAMESPACE, name))


def without_timestamps(event: dict) -> dict:
    event = json.loads(json.dumps(event))
    event.pop("timestamp")
    for item in event["Attribute"] + event.get("EventReport", []):
        item.pop("timestamp")
    return event


def removable_indicator(dump: Path, feed: Feed) -> tuple[str, str, dict]:
    """A (profile id, indicator id, attribute) where the attribute stands for that one indicator
    only: removing the indicator removes the attribute. The profile with the most attributes."""
    profiles = load_json(dump / "intelProfiles.json")["value"]
    events = feed.events()
    candidates = []
    files = {urllib.parse.unquote(p.stem) for p in (dump / "indicators").iterdir()}
    for profile in profiles:
        if profile["id"] not in files:
            continue  # a profile without indicators
        event = events[event_uuid(profile["id"])]
        records = read_indicators(indicator_file(dump, profile["id"]))
        counts = {}
        for record in records:
            counts[record.get("id")] = counts.get(record.get("id"), 0) + 1
        for attribute in sorted(event["Attribute"], key=lambda a: a["uuid"]):
            ids = indicator_ids(attribute)
            if len(ids) == 1 and counts.get(ids[0]) == 1:
                candidates.append((len(event["Attribute"]), profile["id"], ids[0], attribute))
                break
    assert candidates, "no indicator of the samples stands alone for its attribute"
    _, profile_id, indicator_id, attribute = max(candidates, key=lambda c: c[0])
    return profile_id, indicator_id, attribute


# --- tests -----------------------------------------------------------------------------------


def test_an_unchanged_rerun_is_byte_identical(tmp_path):
    dump = copy_samples(tmp_path)
    first = Feed(dump, tmp_path / "feed")
    assert_feed_consistent(first)
    before = first.files()
    again = Feed(dump, tmp_path / "feed")
    assert again.files() == before


def test_a_removed_indicator_and_a_reworded_profile_reach_a_pulling_misp(tmp_path, standin):
    dump = copy_samples(tmp_path)
    first = Feed(dump, tmp_path / "feed")
    assert_feed_consistent(first)
    # A MISP instance pulls the feed: every event is new to it.
    assert sorted(pull(standin, first)) == sorted(first.manifest)
    assert_instance_holds_the_feed(standin, first)
    before_files = first.files()
    before_events = first.events()
    before_manifest = first.manifest

    profile_id, indicator_id, removed = removable_indicator(dump, first)
    remove_indicator(indicator_file(dump, profile_id), indicator_id)
    text = reword_profile(dump, profile_id)
    uuid = event_uuid(profile_id)

    second = Feed(dump, tmp_path / "feed")
    assert_feed_consistent(second)
    old, new = before_events[uuid], second.events()[uuid]
    # The event is newer, in the file and in the manifest.
    assert int(new["timestamp"]) > int(old["timestamp"])
    assert second.manifest[uuid]["timestamp"] == int(new["timestamp"])
    assert second.manifest[uuid]["timestamp"] > before_manifest[uuid]["timestamp"]
    # The removed indicator's attribute is still there, as it was, deleted and newer.
    [retracted] = [a for a in new["Attribute"] if a["uuid"] == removed["uuid"]]
    assert retracted["deleted"] is True
    assert int(retracted["timestamp"]) > int(removed["timestamp"])
    assert int(retracted["timestamp"]) >= int(new["timestamp"])
    unchanged_fields = {k: v for k, v in removed.items() if k not in ("deleted", "timestamp")}
    assert {k: retracted[k] for k in unchanged_fields} == unchanged_fields
    assert [a for a in new["Attribute"] if a["deleted"]] == [retracted]
    assert [h for h in second.hashes() if h[1] == uuid] == [
        [hashlib.md5(a["value"].encode()).hexdigest(), uuid] for a in new["Attribute"] if not a["deleted"]]
    # Every other attribute is as before; the reworded report is newer.
    assert [a for a in new["Attribute"] if a["uuid"] != removed["uuid"]] == [
        a for a in old["Attribute"] if a["uuid"] != removed["uuid"]]
    [old_report], [new_report] = old["EventReport"], new["EventReport"]
    assert text.replace("\r\n", "\n").strip() in new_report["content"]
    assert REVISION.strip() not in old_report["content"]
    assert int(new_report["timestamp"]) > int(old_report["timestamp"])
    # The other events are the same bytes.
    after_files = second.files()
    changed = sorted(n for n in after_files if after_files[n] != before_files.get(n))
    assert changed == sorted(["%s.json" % uuid, "manifest.json", "hashes.csv"]), changed
    assert sorted(after_files) == sorted(before_files)

    # The MISP instance pulls again: it fetches exactly the changed event and takes every change.
    assert pull(standin, second) == [uuid]
    assert_instance_holds_the_feed(standin, second)
    copy = standin.state()["events"][uuid]
    [gone] = [a for a in copy["Attribute"] if a["uuid"] == removed["uuid"]]
    assert gone["deleted"] is True
    ignored = [i for i in standin.state()["ignored"] if i["uuid"] in (removed["uuid"], new_report["uuid"])]
    assert ignored == [], ignored

    # Unchanged from here on: the same bytes, and nothing for MISP to fetch.
    third = Feed(dump, tmp_path / "feed")
    assert third.files() == after_files
    assert pull(standin, third) == []


def test_shrinking_extension_events_reach_a_pulling_misp(tmp_path, standin):
    """With a small attribute limit a profile spans several events. Removing four attributes'
    indicators from its first event moves the following ones into earlier parts (where they get
    new uuids), so every later part changes and the last one is left empty. Each file follows the
    same rules, the emptied part stays in the feed with its attributes deleted, and the pulling
    instance converges to the feed."""
    dump = copy_samples(tmp_path)
    limit = ("--misp-max-attributes", "4")
    first = Feed(dump, tmp_path / "feed", *limit)
    assert_feed_consistent(first)
    pull(standin, first)
    assert_instance_holds_the_feed(standin, first)
    first_events = first.events()

    profiles = [p["id"] for p in load_json(dump / "intelProfiles.json")["value"]]

    def parts_of(profile_id: str, manifest: dict) -> list[str]:
        return [event_uuid(profile_id, n) for n in range(1, 1000)
                if event_uuid(profile_id, n) in manifest]

    profile_id = max(profiles, key=lambda p: len(parts_of(p, first.manifest)))
    parts = parts_of(profile_id, first.manifest)
    assert len(parts) > 2, "the profile should span several events with %s" % (limit,)
    doomed = {i for a in first_events[parts[0]]["Attribute"] for i in indicator_ids(a)}
    for indicator_id in sorted(doomed):
        remove_indicator(indicator_file(dump, profile_id), indicator_id)

    second = Feed(dump, tmp_path / "feed", *limit)
    assert_feed_consistent(second)
    new_events = second.events()
    assert parts_of(profile_id, second.manifest) == parts
    for uuid in parts:
        old, new = first_events[uuid], new_events[uuid]
        assert without_timestamps(old) != without_timestamps(new), uuid
        assert int(new["timestamp"]) > int(old["timestamp"]), uuid
        assert {a["uuid"] for a in old["Attribute"]} <= {a["uuid"] for a in new["Attribute"]}, uuid
        assert sum(not a["deleted"] for a in new["Attribute"]) <= 4
    last = new_events[parts[-1]]
    assert last["Attribute"] and all(a["deleted"] for a in last["Attribute"]), last
    assert last["extends_uuid"] == parts[0]
    assert sorted(pull(standin, second)) == sorted(parts)
    assert_instance_holds_the_feed(standin, second)
    third = Feed(dump, tmp_path / "feed", *limit)
    assert third.files() == second.files()
    assert pull(standin, third) == []


def test_an_unparseable_previous_event_file_is_a_warning(tmp_path):
    dump = copy_samples(tmp_path)
    first = Feed(dump, tmp_path / "feed")
    expected = first.files()
    profile_id = load_json(dump / "intelProfiles.json")["value"][0]["id"]
    broken = first.dir / ("%s.json" % event_uuid(profile_id))
    broken.write_text('{"Event": {"uuid": ', encoding="utf-8")
    again = Feed(dump, tmp_path / "feed")
    assert again.files() == expected
    warnings = [line for line in again.run.stderr_lines if broken.name in line]
    assert warnings and "WARN" in warnings[0], again.run.stderr_lines[-20:]
