"""Both MISP sinks with a state store (`--state`): a profile that vanishes from the source has its
events retired, every attribute deleted, instead of being left live (docs/sinks/misp-feed.md,
docs/sinks/misp-rest.md, docs/state.md).

One `ctiport export` pushes to the MISP REST stand-in (misp_standin.py) and writes a MISP feed,
with a state store; a second stand-in plays a MISP instance that pulls the feed (as in
test_misp_feed_changes.py). The dump is samples/mdti without its unreadable line (an unreadable
line holds revocation back, see test_state.py); its four malformed indicator records stay, so
every run exits 3. Between runs one profile leaves the listing together with its indicators file
(a real listing has no indicators for a profile it does not list), then comes back.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import uuid as uuidlib
from pathlib import Path
from urllib.parse import quote

import pytest

from e2e_util import EXIT_PARTIAL, SAMPLES, load_json, run_ctiport
from misp_oracle import misp_problems
from misp_standin import StandIn, start_standin
from test_misp_feed_changes import assert_instance_holds_the_feed, pull

KEY = "ctiportE2eStateKey0123456789abcdefABCDEF"
PULL_KEY = "ctiportE2eFeedKey0123456789abcdefABCDEF0"  # the key pull() sends
# ctiport's namespace and naming scheme for MISP event uuids (docs/sinks/misp.md).
NAMESPACE = uuidlib.UUID("6f1b3c2e-9a4d-4e57-b1c8-2d7e5f90a3b6")
BROKEN_LINE_FILE = "cfd8fc970baba5dc4c9d41ecbb4cb7c5de2bac5a12fd8ecb05ad9a3b1cd0830e.ndjson"
# The samples keep four malformed indicator records on purpose: every run is partial.
COMPLETE = EXIT_PARTIAL
# What a MISP server does without a word, as the stand-in records it: none of it may happen.
SILENT = ("dropped", "rewritten", "collapsed", "ignored", "tags_not_attached", "problems",
          "header_problems")


def event_uuid(profile_id: str, part: int = 1) -> str:
    name = "misp-event|%s" % profile_id if part == 1 else "misp-event|%s|part|%d" % (profile_id, part)
    return str(uuidlib.uuid5(NAMESPACE, name))


def clean_dump(root: Path) -> Path:
    """samples/mdti without its unreadable line (as test_state.clean_dump)."""
    dump = root / "dump"
    shutil.copytree(SAMPLES, dump)
    path = dump / "indicators" / BROKEN_LINE_FILE
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            json.loads(line)
        except ValueError:
            continue
        lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dump


def remove_profile(dump: Path, index: int) -> tuple[dict, Path]:
    """The profile leaves the listing and its indicators file is moved out of the dump (as
    test_state.remove_profile). Returns the profile and where its indicators file went."""
    path = dump / "intelProfiles.json"
    document = load_json(path)
    profile = document["value"].pop(index)
    path.write_text(json.dumps(document), encoding="utf-8")
    [indicators] = list((dump / "indicators").glob(quote(profile["id"], safe="") + ".*"))
    moved = dump.parent / indicators.name
    indicators.rename(moved)
    return profile, moved


@pytest.fixture
def instances(tmp_path):
    """The instance the REST sink pushes to, and the one that pulls the feed."""
    started = []
    try:
        started.append(start_standin(tmp_path / "pushed", KEY))
        started.append(start_standin(tmp_path / "pulling", PULL_KEY))
        yield started
    finally:
        for server in started:
            server.stop()


class Run:
    """One `ctiport export` to both MISP sinks with the state store."""

    def __init__(self, dump: Path, root: Path, name: str, server: StandIn):
        self.dir = root / "feed"
        self.summary_path = root / ("%s-summary.json" % name)
        self.run = run_ctiport("export", "--from", "dir:%s" % dump, "--to", "misp-feed:%s" % self.dir,
                               "--to", "misp:" + server.url, "--state", root / "state.db",
                               "--summary", self.summary_path, "--no-progress",
                               env_extra={"MISP_KEY": KEY})
        assert self.run.returncode == COMPLETE, self.run.describe()
        self.manifest = load_json(self.dir / "manifest.json")
        self.files = {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())}

    @property
    def summary(self) -> dict:
        return load_json(self.summary_path)

    def sink(self, scheme: str) -> dict:
        return next(s for s in self.summary["sinks"] if s["sink"].startswith(scheme + ":"))

    def events(self) -> dict[str, dict]:
        return {Path(name).stem: json.loads(data)["Event"] for name, data in self.files.items()
                if name.endswith(".json") and name != "manifest.json"}

    def hashes(self) -> list[str]:
        return (self.dir / "hashes.csv").read_text(encoding="utf-8").splitlines()


def assert_consistent(run: Run) -> None:
    """Every event file passes PyMISP; the manifest lists exactly the event files with their
    timestamps; hashes.csv lists exactly the live attributes, and the summary counts them."""
    events = run.events()
    assert sorted(run.manifest) == sorted(events)
    expected = []
    for uuid, event in events.items():
        assert not misp_problems({"Event": event}), (uuid, misp_problems({"Event": event}))
        assert run.manifest[uuid]["timestamp"] == int(event["timestamp"]), uuid
        expected += ["%s,%s" % (hashlib.md5(a["value"].encode()).hexdigest(), uuid)
                     for a in event["Attribute"] if not a["deleted"]]
    assert sorted(run.hashes()) == sorted(expected)
    assert run.sink("misp-feed")["objects"] == len(expected)
    assert run.sink("misp")["status"] == "ok", run.sink("misp")
    assert run.sink("misp")["objects"] == len(expected), (run.sink("misp"), len(expected))
    assert run.summary["state"].get("revocation_held") is None, run.summary["state"]


def assert_nothing_silent(state: dict) -> None:
    silent = {k: state[k] for k in SILENT if state[k]}
    assert not silent, json.dumps(silent, indent=1, ensure_ascii=False)[:4000]


def live(event: dict) -> list[dict]:
    return [a for a in event["Attribute"] if not a["deleted"]]


def edits(state: dict, since: int = 0) -> list[str]:
    return [r["path"] for r in state["requests"][since:]
            if r["method"] == "POST" and r["path"].startswith(("/events/add", "/events/edit/"))]


def test_a_vanished_profile_has_its_events_retired_in_both_sinks_and_restored_when_listed_again(
        tmp_path, instances):
    pushed, pulling = instances
    dump = clean_dump(tmp_path)
    first = Run(dump, tmp_path, "first", pushed)
    assert_consistent(first)
    assert_nothing_silent(pushed.state())
    assert sorted(pull(pulling, first)) == sorted(first.manifest)
    assert_instance_holds_the_feed(pulling, first)
    before = pushed.state()

    listing = (dump / "intelProfiles.json").read_text(encoding="utf-8")
    profile, moved = remove_profile(dump, 1)
    uuid = event_uuid(profile["id"])
    assert uuid in first.manifest and event_uuid(profile["id"], 2) not in first.manifest
    old = first.events()[uuid]
    assert live(old), "the vanished profile's event should hold attributes"
    old_copy = before["events"][uuid]

    # The profile vanished: its memberships are revoked, and both sinks retire its event.
    second = Run(dump, tmp_path, "second", pushed)
    assert_consistent(second)
    after = pushed.state()
    assert_nothing_silent(after)
    # The instance's copy: every attribute deleted, newer; header, tags and report as they were.
    copy = after["events"][uuid]
    assert copy["Attribute"] and not live(copy), copy["Attribute"][:3]
    assert sorted(a["uuid"] for a in copy["Attribute"]) == sorted(a["uuid"] for a in old["Attribute"])
    assert int(copy["timestamp"]) > int(old_copy["timestamp"])
    for field in ("info", "date", "threat_level_id", "analysis", "distribution", "extends_uuid"):
        assert copy[field] == old_copy[field], field
    assert [t["name"] for t in copy["Tag"]] == [t["name"] for t in old_copy["Tag"]]
    assert copy["EventReport"] == old_copy["EventReport"]
    # Only that event was edited; the others are as they were.
    assert edits(after, len(before["requests"])) == ["/events/edit/%s" % uuid]
    for other, event in after["events"].items():
        if other != uuid:
            assert event == before["events"][other], other
    assert "1 retired" in second.run.stderr, second.run.describe()
    assert "%d marked deleted" % len(old["Attribute"]) in second.run.stderr, second.run.describe()

    # The feed still lists the event, every attribute deleted and newer, the rest unchanged.
    new = second.events()[uuid]
    assert uuid in second.manifest
    assert int(new["timestamp"]) > int(old["timestamp"])
    assert second.manifest[uuid]["timestamp"] == int(new["timestamp"]) > first.manifest[uuid]["timestamp"]
    assert [a["uuid"] for a in new["Attribute"]] == [a["uuid"] for a in old["Attribute"]]
    for attribute, previous in zip(new["Attribute"], old["Attribute"]):
        assert attribute["deleted"] is True, attribute
        assert int(attribute["timestamp"]) > int(previous["timestamp"])
        assert int(attribute["timestamp"]) == int(new["timestamp"])
        unchanged = {k: v for k, v in previous.items() if k not in ("deleted", "timestamp")}
        assert {k: attribute[k] for k in unchanged} == unchanged
    assert {k: v for k, v in new.items() if k not in ("timestamp", "Attribute")} == \
        {k: v for k, v in old.items() if k not in ("timestamp", "Attribute")}
    assert not [h for h in second.hashes() if h.endswith("," + uuid)]
    changed = sorted(n for n in second.files if second.files[n] != first.files.get(n))
    assert changed == sorted(["%s.json" % uuid, "manifest.json", "hashes.csv"]), changed
    assert sorted(second.files) == sorted(first.files)
    # A MISP that pulls the feed fetches that event alone and retracts its attributes.
    assert pull(pulling, second) == [uuid]
    assert_instance_holds_the_feed(pulling, second)
    assert not live(pulling.state()["events"][uuid])

    # Still not listed, nothing newly revoked: the retired event stays as it is in both.
    third = Run(dump, tmp_path, "third", pushed)
    assert third.files == second.files
    assert edits(pushed.state(), len(after["requests"])) == []
    assert pull(pulling, third) == []

    # Listed again: the attributes are back, live, newer than their retirement.
    (dump / "intelProfiles.json").write_text(listing, encoding="utf-8")
    moved.rename(dump / "indicators" / moved.name)
    fourth = Run(dump, tmp_path, "fourth", pushed)
    assert_consistent(fourth)
    back = fourth.events()[uuid]
    assert [a["uuid"] for a in live(back)] == [a["uuid"] for a in old["Attribute"]]
    assert all(not a["deleted"] for a in back["Attribute"])
    assert int(back["timestamp"]) > int(new["timestamp"])
    assert all(int(a["timestamp"]) > int(new["timestamp"]) for a in back["Attribute"])
    state = pushed.state()
    assert_nothing_silent(state)
    restored = state["events"][uuid]
    assert sorted(a["uuid"] for a in live(restored)) == sorted(a["uuid"] for a in old["Attribute"])
    assert not [a for a in restored["Attribute"] if a["deleted"]]
    assert int(restored["timestamp"]) > int(copy["timestamp"])
    assert edits(state, len(after["requests"])) == ["/events/edit/%s" % uuid]
    assert pull(pulling, fourth) == [uuid]
    assert_instance_holds_the_feed(pulling, fourth)
    assert len(live(pulling.state()["events"][uuid])) == len(old["Attribute"])
