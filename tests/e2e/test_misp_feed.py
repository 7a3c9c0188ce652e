"""`--to misp-feed:<dir>`: every event checked with independent MISP software (PyMISP's loader and
its port of MISP's attribute validation, reference misp.md §5.1-5.2), nothing dropped, the feed
layout MISP reads (§4), deterministic uuids (§2.2), byte-identical re-runs, and the STIX bundle
of the same run converted with misp-stix (§5.4).

The oracles are hard imports: without pymisp or misp-stix this module fails to collect.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from misp_stix_converter import ExternalSTIX2toMISPParser  # noqa: F401  (hard oracle import)
from pymisp import MISPEvent
from pymisp.tools import validate_event
from stix2 import parse as stix2_parse

from misp_oracle import UUID_RE, iso, misp_problems  # noqa: F401  (shared with misp_standin.py)
from e2e_util import (ADVERSARIAL, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, SAMPLES, by_type,
                      load_json, relationships, run_ctiport)

# ctiport's namespace and naming scheme for MISP uuids (docs/sinks/misp.md;
# crates/sink/src/misp/uuid.rs).
NAMESPACE = uuid.UUID("6f1b3c2e-9a4d-4e57-b1c8-2d7e5f90a3b6")
INDICATOR_IDS_RE = re.compile(r"^MDTI indicators? (.*?)(?:\. |$)")
CSV_COLUMNS = "value,type,profile_id,indicator_id,stix_id"


def event_uuid(profile_id: str, part: int = 1) -> str:
    name = "misp-event|%s" % profile_id if part == 1 else "misp-event|%s|part|%d" % (profile_id, part)
    return str(uuid.uuid5(NAMESPACE, name))


def attribute_uuid(event: str, type_: str, value: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "%s|%s|%s" % (event, type_, value)))


class Feed:
    """One `ctiport export` with a MISP feed, a CSV (with indicator ids) and a STIX bundle."""

    def __init__(self, src: Path, out: Path, *extra, expect_exit: int):
        self.out = out
        self.dir = out / "feed"
        self.csv_path = out / "indicators.csv"
        self.bundle_path = out / "bundle.json"
        self.summary_path = out / "summary.json"
        self.run = run_ctiport("export", "--from", "dir:%s" % src,
                               "--to", "misp-feed:%s" % self.dir, "--to", "csv:%s" % self.csv_path,
                               "--to", "stix:%s" % self.bundle_path, "--csv-columns", CSV_COLUMNS,
                               "--summary", self.summary_path, "--no-progress", *extra)
        assert self.run.returncode == expect_exit, self.run.describe()

    @property
    def summary(self) -> dict:
        return load_json(self.summary_path)

    @property
    def manifest(self) -> dict:
        return load_json(self.dir / "manifest.json")

    def event_files(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.json") if p.name != "manifest.json")

    def events(self) -> list[dict]:
        return [load_json(p)["Event"] for p in self.event_files()]

    def rows(self) -> list[dict]:
        with open(self.csv_path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def samples_feed(tmp_path_factory) -> Feed:
    return Feed(SAMPLES, tmp_path_factory.mktemp("misp-samples"), expect_exit=EXIT_PARTIAL)


@pytest.fixture(scope="module")
def adversarial_feed(tmp_path_factory) -> Feed:
    return Feed(ADVERSARIAL, tmp_path_factory.mktemp("misp-adversarial"), expect_exit=EXIT_OK)


def write_dump(root: Path, profiles: list[dict], indicators: dict[str, list[dict]]) -> Path:
    """A minimal Graph dump (docs/contracts.md, "Dump layout")."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "intelProfiles.json").write_text(json.dumps({"value": profiles}), encoding="utf-8")
    (root / "indicators").mkdir(exist_ok=True)
    for profile_id, values in indicators.items():
        safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
        name = "".join(chr(b) if chr(b) in safe else "%%%02X" % b for b in profile_id.encode())
        (root / "indicators" / ("%s.json" % name)).write_text(json.dumps({"value": values}),
                                                               encoding="utf-8")
    return root


def unclassified(id_: str, kind: str, value: str, first="2024-01-01T00:00:00Z", last=None) -> dict:
    return {"id": id_, "source": "osint", "firstSeenDateTime": first, "lastSeenDateTime": last,
            "artifact": {"@odata.type": "#microsoft.graph.security.unclassifiedArtifact",
                         "kind": kind, "value": value}}


def hostname(id_: str, value: str, first="2024-01-01T00:00:00Z", last=None) -> dict:
    return {"id": id_, "source": "microsoft", "firstSeenDateTime": first, "lastSeenDateTime": last,
            "artifact": {"@odata.type": "#microsoft.graph.security.hostname", "id": value}}


@pytest.fixture(scope="module")
def tricky_feed(tmp_path_factory) -> Feed:
    """Values a MISP server would rewrite or refuse, and duplicates it would collapse."""
    root = tmp_path_factory.mktemp("misp-tricky")
    profile = {"id": "tricky/1", "kind": "actor", "title": "Tricky 🦊 \"Actor\"",
               "firstActiveDateTime": "2021-05-05T00:00:00Z",
               "description": {"content": "Line 1\r\nEmoji 🦊 kept.", "format": "markdown"},
               "tradecraft": {"content": "Phishing.", "format": "text"}}
    tool = {"id": "tool-2", "kind": "tool", "title": "Quiet Tool", "firstActiveDateTime": None}
    dump = write_dump(root / "dump", [profile, tool], {
        "tricky/1": [
            hostname("h-wild", "*.wild.example"),
            hostname("h-single", "intranet"),
            hostname("h-sharp-s", "straße.example"),
            hostname("h-idn", "bücher.example"),
            hostname("h-puny", "xn--bcher-kva.example"),
            unclassified("e-upper", "email", "Mixed.Case@Example.org"),
            unclassified("e-lower", "email", "mixed.case@example.org", first="2023-01-01T00:00:00Z"),
            unclassified("u-emoji", "url", "https://bad.example/🔥/x?q=1"),
            unclassified("u-dot", "url", "http://x.example/a(dot)b"),
            unclassified("i-inverted", "ip", "198.51.100.9", first="2024-06-01T00:00:00Z",
                         last="2024-01-01T00:00:00Z"),
            unclassified("i-cidr", "ip", "2001:DB8::/32"),
        ],
        "tool-2": [unclassified("t-1", "ip", "198.51.100.9", first="2022-02-02T00:00:00Z")],
    })
    return Feed(dump, root / "out", expect_exit=EXIT_OK)


# --- checks -------------------------------------------------------------------------------------


def assert_feed_valid(feed: Feed) -> None:
    files = feed.event_files()
    assert files, "no event files in %s" % feed.dir
    failures = {}
    for path in files:
        problems = misp_problems(load_json(path))
        if problems:
            failures[path.name] = problems
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)


def indicator_ids(attribute: dict) -> list[str]:
    match = INDICATOR_IDS_RE.match(attribute["comment"])
    assert match, attribute["comment"]
    return [part.split(" (")[0] for part in match.group(1).split("; ")]


def profile_of_events(feed: Feed) -> dict[str, str]:
    """event uuid -> profile id, from the documented uuid scheme."""
    owners = {}
    profiles = {row["profile_id"] for row in feed.rows()}
    profiles |= {p["external_references"][0]["external_id"] for p in load_json(feed.bundle_path)["objects"]
                 if p["type"] in ("threat-actor", "intrusion-set", "tool")}
    for profile_id in profiles:
        for part in range(1, 1000):
            uuid_ = event_uuid(profile_id, part)
            if part > 1 and uuid_ not in feed.manifest:
                break
            owners[uuid_] = profile_id
    return owners


def assert_nothing_dropped(feed: Feed, exact_counts: bool) -> None:
    """Every mapped indicator occurrence (a CSV row) is in its profile's events; with
    `exact_counts`, as exactly one attribute (no value repeats within a profile)."""
    rows = feed.rows()
    assert len(rows) == feed.summary["indicators"], (len(rows), feed.summary["indicators"])
    expected = defaultdict(Counter)
    for row in rows:
        expected[row["profile_id"]][row["indicator_id"]] += 1
    owners = profile_of_events(feed)
    found = defaultdict(Counter)
    attributes_per_profile = Counter()
    for event in feed.events():
        assert event["uuid"] in owners, "event %s belongs to no exported profile" % event["uuid"]
        profile_id = owners[event["uuid"]]
        for attribute in event["Attribute"]:
            attributes_per_profile[profile_id] += 1
            for indicator_id in indicator_ids(attribute):
                found[profile_id][indicator_id] += 1
    assert set(found) <= set(owners.values())
    for profile_id, ids in expected.items():
        assert found[profile_id] == ids, (profile_id, ids - found[profile_id], found[profile_id] - ids)
        if exact_counts:
            assert attributes_per_profile[profile_id] == sum(ids.values()), profile_id
    sink = next(s for s in feed.summary["sinks"] if s["sink"].startswith("misp-feed:"))
    assert sink["status"] == "ok"
    assert sink["objects"] == sum(attributes_per_profile.values())


# --- tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["samples_feed", "adversarial_feed", "tricky_feed"])
def test_every_event_passes_pymisp_and_misp_validation(name, request):
    assert_feed_valid(request.getfixturevalue(name))


def test_no_sample_indicator_is_dropped(samples_feed):
    assert_nothing_dropped(samples_feed, exact_counts=True)


@pytest.mark.parametrize("name", ["adversarial_feed", "tricky_feed"])
def test_no_indicator_is_dropped_and_duplicates_are_merged(name, request):
    assert_nothing_dropped(request.getfixturevalue(name), exact_counts=False)


def test_one_event_per_profile_with_stable_uuids(samples_feed):
    profiles = load_json(SAMPLES / "intelProfiles.json")["value"]
    manifest = samples_feed.manifest
    assert sorted(manifest) == sorted(event_uuid(p["id"]) for p in profiles)
    assert sorted(p.stem for p in samples_feed.event_files()) == sorted(manifest)
    all_attribute_uuids = []
    for event in samples_feed.events():
        for attribute in event["Attribute"]:
            assert attribute["uuid"] == attribute_uuid(event["uuid"], attribute["type"],
                                                       attribute["value"])
            all_attribute_uuids.append(attribute["uuid"])
    # Attribute uuids are unique across a MISP instance (misp.md §1.2).
    assert len(all_attribute_uuids) == len(set(all_attribute_uuids))


def test_event_header_tags_and_report(samples_feed):
    profiles = {p["id"]: p for p in load_json(SAMPLES / "intelProfiles.json")["value"]}
    owners = profile_of_events(samples_feed)
    for event in samples_feed.events():
        profile = profiles[owners[event["uuid"]]]
        kind = profile["kind"]
        label = {"actor": "Threat actor profile", "tool": "Tool profile"}[kind]
        assert event["info"] == "%s: %s" % (label, profile["title"])
        galaxy = {"actor": "threat-actor", "tool": "tool"}[kind]
        assert [t["name"] for t in event["Tag"]] == [
            "tlp:amber", 'misp-galaxy:%s="%s"' % (galaxy, profile["title"])]
        assert event["threat_level_id"] == "4" and event["analysis"] == "2"
        assert event["distribution"] == "0" and event["published"] is False
        assert event["extends_uuid"] == ""
        assert event["Orgc"]["name"] == "Microsoft Defender Threat Intelligence"
        if profile.get("firstActiveDateTime"):
            assert event["date"] == profile["firstActiveDateTime"][:10]
        else:
            dates = [a.get("first_seen") or a.get("last_seen") for a in event["Attribute"]]
            assert event["date"] == min(d for d in dates if d)[:10]
        [report] = event["EventReport"]
        text = (profile.get("description") or profile.get("summary"))["content"].replace("\r\n", "\n")
        assert text.strip() in report["content"], profile["title"]
        if profile.get("tradecraft"):
            tradecraft = profile["tradecraft"]["content"].replace("\r\n", "\n")
            assert tradecraft.strip() in report["content"]
        for attribute in event["Attribute"]:
            assert attribute["to_ids"] is True
            assert attribute["distribution"] == "5"


def test_timestamps_come_from_source_dates(samples_feed):
    profiles = {p["id"]: p for p in load_json(SAMPLES / "intelProfiles.json")["value"]}
    owners = profile_of_events(samples_feed)
    for event in samples_feed.events():
        profile = profiles[owners[event["uuid"]]]
        stamps = []
        for attribute in event["Attribute"]:
            dates = [iso(attribute[k]) for k in ("first_seen", "last_seen") if attribute.get(k)]
            assert int(attribute["timestamp"]) == int(max(dates).timestamp())
            stamps.append(int(attribute["timestamp"]))
        if profile.get("firstActiveDateTime"):
            stamps.append(int(iso(profile["firstActiveDateTime"]).timestamp()))
        assert int(event["timestamp"]) == max(stamps, default=0)
        assert samples_feed.manifest[event["uuid"]]["timestamp"] == int(event["timestamp"])


def test_manifest_and_hashes_match_the_events(samples_feed):
    manifest = samples_feed.manifest
    expected_hashes = []
    for event in samples_feed.events():
        entry = manifest[event["uuid"]]
        assert set(entry) == {"Orgc", "Tag", "info", "date", "analysis", "threat_level_id", "timestamp"}
        assert entry["Orgc"] == event["Orgc"] and entry["Tag"] == event["Tag"]
        assert (entry["info"], entry["date"]) == (event["info"], event["date"])
        assert (entry["analysis"], entry["threat_level_id"]) == (2, 4)
        expected_hashes += [[hashlib.md5(a["value"].encode()).hexdigest(), event["uuid"]]
                            for a in event["Attribute"]]
    raw = (samples_feed.dir / "hashes.csv").read_bytes()
    assert b"\r" not in raw, "MISP splits hashes.csv on \\n"
    with open(samples_feed.dir / "hashes.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert sorted(rows) == sorted(expected_hashes)
    assert not list(samples_feed.dir.glob(".*")), "staging left behind"


def test_values_are_stored_the_way_misp_stores_them(tricky_feed):
    events = {e["uuid"]: e for e in tricky_feed.events()}
    event = events[event_uuid("tricky/1")]
    by_value = {a["value"]: a for a in event["Attribute"]}
    assert by_value["*.wild.example"]["type"] == "text"
    assert by_value["*.wild.example"]["to_ids"] is False
    assert "refuses it as domain" in by_value["*.wild.example"]["comment"]
    assert by_value["intranet"]["type"] == "text"
    assert by_value["strasse.example"]["type"] == "domain"
    # bücher.example and its punycode are one MISP attribute, carrying both indicator ids.
    assert sorted(indicator_ids(by_value["xn--bcher-kva.example"])) == ["h-idn", "h-puny"]
    merged = by_value["mixed.case@example.org"]
    assert merged["type"] == "email"
    assert sorted(indicator_ids(merged)) == ["e-lower", "e-upper"]
    assert merged["first_seen"].startswith("2023-01-01T00:00:00")
    assert "https://bad.example/%F0%9F%94%A5/x?q=1" in by_value
    assert "http://x.example/a.b" in by_value
    inverted = by_value["198.51.100.9"]
    assert iso(inverted["first_seen"]) < iso(inverted["last_seen"])
    assert "2001:db8::/32" in by_value
    assert event["info"] == 'Threat actor profile: Tricky ? "Actor"'
    assert event["Tag"][1]["name"] == 'misp-galaxy:threat-actor="Tricky ? "Actor""'
    assert "Emoji 🦊 kept." in event["EventReport"][0]["content"]
    # The same IP in the tool's event is another attribute (instance-wide uuid uniqueness).
    tool_event = events[event_uuid("tool-2")]
    assert tool_event["Attribute"][0]["value"] == "198.51.100.9"
    assert tool_event["Attribute"][0]["uuid"] != inverted["uuid"]
    assert tool_event["Tag"][1]["name"] == 'misp-galaxy:tool="Quiet Tool"'
    assert tool_event["date"] == "2022-02-02"


def test_large_profiles_are_split_into_linked_events(tmp_path, samples_feed):
    split = Feed(SAMPLES, tmp_path, "--misp-max-attributes", "10", expect_exit=EXIT_PARTIAL)
    assert_feed_valid(split)
    assert_nothing_dropped(split, exact_counts=True)
    events = split.events()
    main_uuids = {event_uuid(p["id"]) for p in load_json(SAMPLES / "intelProfiles.json")["value"]}
    mains = [e for e in events if e["uuid"] in main_uuids]
    parts = [e for e in events if e["uuid"] not in main_uuids]
    assert len(mains) == len(main_uuids) and parts
    assert all(len(e["Attribute"]) <= 10 for e in events)
    by_uuid = {e["uuid"]: e for e in events}
    for part in parts:
        main = by_uuid[part["extends_uuid"]]
        assert part["info"].startswith(main["info"] + " (part ")
        assert part["date"] == main["date"] and part["Tag"] == main["Tag"]
        assert "EventReport" not in part
    assert sum(len(e["Attribute"]) for e in events) == sum(
        len(e["Attribute"]) for e in samples_feed.events())


def test_a_second_identical_run_gives_byte_identical_files(tmp_path, samples_feed):
    again = Feed(SAMPLES, tmp_path, expect_exit=EXIT_PARTIAL)
    first = {p.name: p.read_bytes() for p in samples_feed.dir.iterdir()}
    second = {p.name: p.read_bytes() for p in again.dir.iterdir()}
    assert first.keys() == second.keys()
    assert [n for n in first if first[n] != second[n]] == []
    assert samples_feed.csv_path.read_bytes() == again.csv_path.read_bytes()
    # Re-exporting into the same directory rewrites the same bytes and nothing else.
    Feed(SAMPLES, samples_feed.out, expect_exit=EXIT_PARTIAL)
    assert {p.name: p.read_bytes() for p in samples_feed.dir.iterdir()} == first


def test_distribution_and_creator_organisation_options(tmp_path):
    org = "0b4a7c8e-6d2f-4f3a-9b1c-5e6d7f8a9b0c"
    feed = Feed(SAMPLES, tmp_path, "--misp-distribution", "community", "--misp-org-name",
                "Example CTI Org", "--misp-org-uuid", org.upper(), "--tlp", "amber+strict",
                expect_exit=EXIT_PARTIAL)
    for event in feed.events():
        assert event["distribution"] == "1"
        assert event["Orgc"] == {"name": "Example CTI Org", "uuid": org}
        assert event["Tag"][0]["name"] == "tlp:amber+strict"
    numeric = Feed(SAMPLES, tmp_path / "n", "--misp-distribution", "3", expect_exit=EXIT_PARTIAL)
    assert {e["distribution"] for e in numeric.events()} == {"3"}


@pytest.mark.parametrize("args, message", [
    (["--misp-org-uuid", "not-a-uuid"], "--misp-org-uuid"),
    (["--misp-distribution", "4"], "misp-distribution"),
    (["--misp-max-attributes", "0"], "misp-max-attributes"),
])
def test_bad_misp_options_are_usage_errors(tmp_path, args, message):
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "misp-feed:%s" % (tmp_path / "f"),
                    "--no-progress", *args)
    assert r.returncode == EXIT_USAGE, r.describe()
    assert message in r.stderr
    assert not (tmp_path / "f" / "manifest.json").exists()


def test_a_broken_attribute_table_is_a_usage_error(tmp_path):
    table = load_json(Path(__file__).resolve().parents[2] / "mappings" / "misp-attributes.json")
    table["ipv4"]["category"] = "Attribution"  # MISP refuses ip-dst in Attribution
    (tmp_path / "misp-attributes.json").write_text(json.dumps(table), encoding="utf-8")
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "misp-feed:%s" % (tmp_path / "f"),
                    "--mappings", tmp_path, "--no-progress")
    assert r.returncode == EXIT_USAGE, r.describe()
    assert "misp-attributes.json" in r.stderr and "/ipv4/category" in r.stderr, r.stderr


def test_the_stix_bundle_converts_with_misp_stix(samples_feed):
    """misp.md §5.4: misp-stix's importer for third-party STIX converts the bundle without a single
    error or warning. Each profile is a `report` (profile object and tradecraft note), so misp-stix
    keeps the notes; in single-event mode every indicator becomes one attribute."""
    bundle_dict = load_json(samples_feed.bundle_path)
    objects = bundle_dict["objects"]
    for single_event in (False, True):
        parser = ExternalSTIX2toMISPParser()
        parser.load_stix_bundle(stix2_parse(bundle_dict, allow_custom=True))
        parser.parse_stix_bundle(single_event=single_event)
        errors = [e for messages in parser.errors.values() for e in messages]
        assert errors == [], (single_event, errors[:10])
        assert not parser.warnings, (single_event, dict(parser.warnings))
    # The single-event parser (last in the loop) is the one checked below; every profile object and
    # every note is in a report.
    in_reports = {ref for report in by_type(objects, "report") for ref in report["object_refs"]}
    profile_objects = [o for o in objects if o["type"] in ("threat-actor", "intrusion-set", "tool")]
    assert {o["id"] for o in profile_objects + by_type(objects, "note")} <= in_reports
    event = parser.misp_event
    indicators = by_type(objects, "indicator")
    converted = len(event.attributes) + len(event.objects)
    assert converted == len(indicators), (converted, len(indicators))
    # Every converted attribute passes MISP's value rules too.
    errors_of_validation: dict = {}
    validated = validate_event(event, errors_of_validation)
    assert not errors_of_validation, errors_of_validation
    assert len(validated.attributes) == len(event.attributes)
    # The indicator values the feed exports are the ones misp-stix reads from the patterns.
    feed_values = {a["value"] for e in samples_feed.events() for a in e["Attribute"]}
    stix_values = {a.value for a in event.attributes}
    assert stix_values <= feed_values, sorted(stix_values - feed_values)[:10]
    assert len(relationships(objects, "indicates")) >= len(indicators)
