"""`--to misp:<base url>` against the MISP REST stand-in (misp_standin.py, reference misp.md §6.2),
which validates every pushed payload with PyMISP (misp_oracle.py, the feed tests' checker) and
records what a MISP server would drop, rewrite, collapse or ignore.

Each push also writes the MISP feed of the same run: the REST sink pushes the feed's events, so
the instance must end up holding exactly the feed's attributes.

The oracles are hard imports: without pymisp this module fails to collect.
"""
from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from pymisp import PyMISP

from e2e_util import (ADVERSARIAL, EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, SAMPLES,
                      load_json, run_ctiport)
from misp_standin import StandIn, start_standin
from test_taxii_tls import make_certificates

KEY = "ctiportE2eKey0123456789abcdefABCDEF01234"
WRONG_KEY = "WrongKey0123456789abcdefABCDEF0123456789"
INDICATOR_IDS_RE = re.compile(r"^MDTI indicators? (.*?)(?:\. |$)")
# Compared between the feed and the instance's copy (MISP adds ids and other fields).
ATTRIBUTE_FIELDS = ("uuid", "type", "category", "value", "to_ids", "comment", "first_seen",
                    "last_seen")
# What a MISP server does without a word, as the stand-in records it: none of it may happen.
SILENT = ("dropped", "rewritten", "collapsed", "ignored", "tags_not_attached", "problems",
          "header_problems")


@pytest.fixture
def standin(tmp_path):
    server = start_standin(tmp_path / "standin", KEY)
    try:
        yield server
    finally:
        server.stop()
    assert server.process.poll() is not None, "the stand-in is still running"


class Push:
    """One `ctiport export` to the stand-in, with the MISP feed of the same run beside it."""

    def __init__(self, server: StandIn, src: Path, out: Path, *extra, key: str = KEY):
        out.mkdir(parents=True, exist_ok=True)
        self.feed = out / "feed"
        self.summary_path = out / "summary.json"
        self.run = run_ctiport("export", "--from", "dir:%s" % src, "--to", "misp:" + server.url,
                               "--to", "misp-feed:%s" % self.feed, "--summary", self.summary_path,
                               "--no-progress", *extra, env_extra={"MISP_KEY": key})

    @property
    def summary(self) -> dict:
        return load_json(self.summary_path)

    def sink(self, scheme: str) -> dict:
        return next(s for s in self.summary["sinks"] if s["sink"].startswith(scheme + ":"))

    def feed_events(self) -> dict[str, dict]:
        return {p.stem: load_json(p)["Event"] for p in self.feed.glob("*.json")
                if p.name != "manifest.json"}


def live(event: dict) -> list[dict]:
    return [a for a in event["Attribute"] if not a["deleted"]]


def comparable(attributes) -> list[tuple]:
    return sorted(tuple(a.get(k) for k in ATTRIBUTE_FIELDS) for a in attributes)


def assert_nothing_silent(state: dict) -> None:
    silent = {k: state[k] for k in SILENT if state[k]}
    assert not silent, json.dumps(silent, indent=1, ensure_ascii=False)[:4000]


def assert_instance_holds_the_feed(state: dict, push: Push) -> int:
    """Every feed event is on the instance with the same header, tags, report and exactly the
    feed's attributes (live); returns the number of attributes."""
    total = 0
    for uuid, event in push.feed_events().items():
        assert uuid in state["events"], "event %s (%s) was not pushed" % (uuid, event["info"])
        stored = state["events"][uuid]
        for field in ("info", "date", "threat_level_id", "analysis", "distribution", "extends_uuid"):
            assert stored[field] == event[field], (uuid, field, stored[field], event[field])
        assert [t["name"] for t in stored["Tag"]] == [t["name"] for t in event["Tag"]]
        assert comparable(live(stored)) == comparable(event["Attribute"]), uuid
        reports = [(r["uuid"], r["name"], r["content"]) for r in stored["EventReport"] if not r["deleted"]]
        assert reports == [(r["uuid"], r["name"], r["content"]) for r in event.get("EventReport", [])]
        total += len(event["Attribute"])
    return total


def requests(state: dict, method: str, prefix: str) -> list[dict]:
    return [r for r in state["requests"] if r["method"] == method and r["path"].startswith(prefix)]


def test_push_samples_every_event_with_every_attribute_and_nothing_dropped(standin, tmp_path):
    push = Push(standin, SAMPLES, tmp_path / "out")
    assert push.run.returncode == EXIT_PARTIAL, push.run.describe()  # the samples hold bad records
    state = standin.state()
    assert_nothing_silent(state)
    feed = push.feed_events()
    assert sorted(state["events"]) == sorted(feed)
    total = assert_instance_holds_the_feed(state, push)
    sink = push.sink("misp")
    assert sink["status"] == "ok" and sink["objects"] == total, sink
    assert sink["objects"] == push.sink("misp-feed")["objects"]
    assert sink["indicators"] == push.summary["indicators"]
    # The upsert is MISP's own: HEAD, then add; the instance's copy reads back with PyMISP.
    assert len(requests(state, "POST", "/events/add")) == len(feed)
    assert all(r["status"] == 200 for r in requests(state, "POST", "/events/add"))
    misp = PyMISP(standin.url, KEY, ssl=False)
    for uuid, event in feed.items():
        copy = misp.get_event(uuid, pythonify=True)
        assert sorted(a.uuid for a in copy.attributes) == sorted(a["uuid"] for a in event["Attribute"])
    # The key is never logged.
    assert KEY not in push.run.stderr


def test_a_second_identical_push_changes_nothing(standin, tmp_path):
    first = Push(standin, SAMPLES, tmp_path / "first")
    assert first.run.returncode == EXIT_PARTIAL, first.run.describe()
    before = standin.state()
    second = Push(standin, SAMPLES, tmp_path / "second")
    assert second.run.returncode == EXIT_PARTIAL, second.run.describe()
    after = standin.state()
    assert_nothing_silent(after)
    assert sorted(after["events"]) == sorted(before["events"]), "an event was duplicated"
    for uuid, event in after["events"].items():
        assert len(event["Attribute"]) == len(before["events"][uuid]["Attribute"]), uuid
        assert event["timestamp"] == before["events"][uuid]["timestamp"], uuid
    assert [r for r in after["requests"] if r["status"] == 403] == []
    new = after["requests"][len(before["requests"]):]
    assert not [r for r in new if r["path"].startswith(("/events/add", "/events/edit"))], new
    sink = second.sink("misp")
    assert sink["status"] == "ok" and sink["objects"] == first.sink("misp")["objects"], sink
    assert "8 unchanged" in second.run.stderr, second.run.describe()


def indicator_ids(attribute: dict) -> list[str]:
    match = INDICATOR_IDS_RE.match(attribute["comment"])
    assert match, attribute["comment"]
    return [part.split(" (")[0] for part in match.group(1).split("; ")]


def read_records(path: Path) -> list[dict]:
    if path.suffix == ".ndjson":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return load_json(path)["value"]


def write_records(path: Path, records: list[dict]) -> None:
    if path.suffix == ".ndjson":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps({"value": records}), encoding="utf-8")


CHANGED_PROFILE = "adv~profile.v2_%41"
NEW_SUMMARY = "Rewritten summary: the tool now targets mail servers."
NEW_INDICATOR = {
    "@odata.type": "#microsoft.graph.security.intelligenceProfileIndicator",
    "id": "e2e-new-indicator-0001", "source": "osint",
    "firstSeenDateTime": "2021-01-01T00:00:00Z", "lastSeenDateTime": None,
    "artifact": {"@odata.type": "#microsoft.graph.security.hostname", "id": "newly-listed.example"},
}


def changed_copy(root: Path, event: dict) -> tuple[Path, str]:
    """A copy of the adversarial dump in which CHANGED_PROFILE lost one indicator (one that is
    the only source of its attribute), gained NEW_INDICATOR and has a new summary. Returns the
    copy and the uuid of the attribute that must be retracted."""
    dump = root / "adversarial-changed"
    shutil.copytree(ADVERSARIAL, dump)
    path = dump / "indicators" / "adv~profile.v2_%2541.ndjson"
    records = read_records(path)
    counts = Counter(r.get("id") for r in records)
    removable = next(a for a in event["Attribute"]
                     if len(indicator_ids(a)) == 1 and counts[indicator_ids(a)[0]] == 1)
    gone = indicator_ids(removable)[0]
    write_records(path, [r for r in records if r.get("id") != gone] + [NEW_INDICATOR])
    profiles = dump / "intelProfiles.ndjson"
    lines = []
    for line in profiles.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else None
        if isinstance(record, dict) and record.get("id") == CHANGED_PROFILE:
            record["summary"] = {"@odata.type": "microsoft.graph.security.formattedContent",
                                 "content": NEW_SUMMARY, "format": "text"}
            line = json.dumps(record)
        lines.append(line)
    profiles.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dump, removable["uuid"]


def test_a_changed_dump_retracts_adds_and_bumps_the_timestamp(standin, tmp_path):
    original = Push(standin, ADVERSARIAL, tmp_path / "original")
    assert original.run.returncode == EXIT_OK, original.run.describe()
    before = standin.state()
    assert_instance_holds_the_feed(before, original)
    event_uuid = next(u for u, e in original.feed_events().items()
                      if e["info"] == "Tool profile: Null-Content Tool")
    dump, retracted = changed_copy(tmp_path, original.feed_events()[event_uuid])

    changed = Push(standin, dump, tmp_path / "changed")
    assert changed.run.returncode == EXIT_OK, changed.run.describe()
    after = standin.state()
    assert_nothing_silent(after)
    event = after["events"][event_uuid]
    gone = next(a for a in event["Attribute"] if a["uuid"] == retracted)
    assert gone["deleted"] is True, gone
    new = [a for a in live(event) if a["value"] == "newly-listed.example"]
    assert len(new) == 1 and new[0]["type"] == "domain", live(event)
    assert int(event["timestamp"]) > int(before["events"][event_uuid]["timestamp"])
    assert NEW_SUMMARY in event["EventReport"][0]["content"]
    # The instance now holds exactly the changed feed; the other events were not touched.
    assert_instance_holds_the_feed(after, changed)
    edits = requests(after, "POST", "/events/edit/")
    assert [r["path"] for r in edits] == ["/events/edit/%s" % event_uuid], edits
    assert all(r["status"] == 200 for r in edits)
    for uuid, other in after["events"].items():
        if uuid != event_uuid:
            assert other["timestamp"] == before["events"][uuid]["timestamp"], uuid
    sink = changed.sink("misp")
    assert sink["status"] == "ok" and sink["objects"] == changed.sink("misp-feed")["objects"]
    assert "1 marked deleted" in changed.run.stderr, changed.run.describe()


def test_large_profiles_are_linked_events_and_a_shrunk_profile_retracts_its_extra_parts(
        standin, tmp_path):
    small = Push(standin, SAMPLES, tmp_path / "small-events", "--misp-max-attributes", "20")
    assert small.run.returncode == EXIT_PARTIAL, small.run.describe()
    state = standin.state()
    assert_nothing_silent(state)
    assert_instance_holds_the_feed(state, small)
    extensions = {u: e for u, e in state["events"].items() if e["extends_uuid"]}
    assert extensions, "no profile of the samples was split"
    assert all(e["extends_uuid"] in state["events"] for e in extensions.values())
    # The default limit: one event per profile again; the extension events' attributes are
    # retracted, since they left (moved to the main event).
    whole = Push(standin, SAMPLES, tmp_path / "whole")
    assert whole.run.returncode == EXIT_PARTIAL, whole.run.describe()
    state = standin.state()
    assert_nothing_silent(state)
    assert_instance_holds_the_feed(state, whole)
    for uuid in extensions:
        assert live(state["events"][uuid]) == [], uuid
    assert whole.sink("misp")["status"] == "ok"


def test_a_wrong_key_fails_clearly_and_pushes_nothing(standin, tmp_path):
    push = Push(standin, SAMPLES, tmp_path / "out", key=WRONG_KEY)
    assert push.run.returncode == EXIT_FAILED, push.run.describe()
    assert "refused the API key in MISP_KEY" in push.run.stderr, push.run.describe()
    assert WRONG_KEY not in push.run.stderr, "the key appears in the log"
    state = standin.state()
    assert state["events"] == {}
    assert [r["path"] for r in state["requests"]] == ["/users/view/me"]
    assert state["requests"][0]["status"] == 403
    sink = push.sink("misp")
    assert sink["status"] == "failed" and "MISP_KEY" in sink["error"], sink
    # The feed of the same run is not harmed.
    assert push.sink("misp-feed")["status"] == "ok"


def test_missing_or_malformed_keys_and_plain_http_are_usage_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MISP_KEY", raising=False)
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "misp:https://misp.example.invalid/")
    assert r.returncode == EXIT_USAGE, r.describe()
    assert "MISP_KEY" in r.stderr
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "misp:https://misp.example.invalid/",
                    env_extra={"MISP_KEY": "not-a-key"})
    assert r.returncode == EXIT_USAGE, r.describe()
    assert "40 letters and digits" in r.stderr and "not-a-key" not in r.stderr
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "misp:http://misp.example.invalid/",
                    "--to", "stix:%s" % (tmp_path / "b.json"), env_extra={"MISP_KEY": KEY})
    assert r.returncode == EXIT_USAGE, r.describe()
    assert "--misp-allow-http" in r.stderr, r.describe()
    assert not (tmp_path / "b.json").exists()
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES,
                    "--to", "misp:https://user:hunter2@misp.example.invalid/", env_extra={"MISP_KEY": KEY})
    assert r.returncode == EXIT_USAGE and "hunter2" not in r.stderr, r.describe()


def test_server_errors_are_retried(tmp_path):
    server = start_standin(tmp_path / "standin", KEY, fail_first=3)
    try:
        push = Push(server, ADVERSARIAL, tmp_path / "out")
        assert push.run.returncode == EXIT_OK, push.run.describe()
        assert "HTTP 503" in push.run.stderr and "retrying" in push.run.stderr
        state = server.state()
        assert_nothing_silent(state)
        assert_instance_holds_the_feed(state, push)
        assert [r["status"] for r in state["requests"][:3]] == [503, 503, 503]
    finally:
        server.stop()


def test_a_role_that_cannot_create_tags_is_reported(tmp_path):
    """misp.md §1.1: unknown tags are created only with perm_tag_editor, else silently not
    attached. The instance knows tlp:amber but none of the galaxy tags."""
    server = start_standin(tmp_path / "standin", KEY, role={"perm_tag_editor": False},
                           known_tags=("tlp:amber",))
    try:
        push = Push(server, ADVERSARIAL, tmp_path / "out")
        assert push.run.returncode == EXIT_FAILED, push.run.describe()
        assert "perm_tag_editor" in push.run.stderr
        sink = push.sink("misp")
        assert sink["status"] == "failed" and sink["failed"] > 0, sink
        assert "not attached" in sink["error"] and "perm_tag_editor" in sink["error"], sink
        state = server.state()
        # Everything else arrived: every attribute, and the TLP tag.
        assert sink["objects"] == push.sink("misp-feed")["objects"]
        assert all([t["name"] for t in e["Tag"]] == ["tlp:amber"] for e in state["events"].values())
        assert state["dropped"] == [] and state["problems"] == []
    finally:
        server.stop()


def test_a_role_that_cannot_add_events_stops_before_pushing(tmp_path):
    server = start_standin(tmp_path / "standin", KEY, role={"perm_add": False})
    try:
        push = Push(server, ADVERSARIAL, tmp_path / "out")
        assert push.run.returncode == EXIT_FAILED, push.run.describe()
        assert "perm_add" in push.sink("misp")["error"]
        assert server.state()["events"] == {}
    finally:
        server.stop()


def test_tls_is_verified_and_ca_file_trusts_a_private_ca(tmp_path):
    certificates = make_certificates(tmp_path)
    server = start_standin(tmp_path / "standin", KEY, tls=certificates)
    try:
        untrusted = Push(server, ADVERSARIAL, tmp_path / "untrusted")
        assert untrusted.run.returncode == EXIT_FAILED, untrusted.run.describe()
        assert "not trusted" in untrusted.run.stderr and "--ca-file" in untrusted.run.stderr
        assert "retrying" not in untrusted.run.stderr, untrusted.run.describe()
        assert server.state()["requests"] == []
        trusted = Push(server, ADVERSARIAL, tmp_path / "trusted", "--ca-file", certificates[0])
        assert trusted.run.returncode == EXIT_OK, trusted.run.describe()
        state = server.state()
        assert_nothing_silent(state)
        assert_instance_holds_the_feed(state, trusted)
    finally:
        server.stop()
