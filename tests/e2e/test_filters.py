"""`ctiport export` filters: --kind, --profile, --source, --artifact-type, --seen-since and
--min-reputation, alone and combined, on samples/mdti and live against ctiport-sim.

Expectations are computed here from the sample files themselves (and from
samples/mdti-expected.json for which records are malformed or skipped), with the rules
docs/filters.md documents, never from an unfiltered ctiport run.
"""
from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from e2e_util import (EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, PROFILE_TYPES, SAMPLES, SAMPLES_EXPECTED,
                      assert_stix_ok, canonical_objects, export, load_json, relationships,
                      run_ctiport)
from sim_util import running_sim

SKIPPED_TYPES = {"hostcomponent", "hostcookie", "hostsslcertificate", "hosttracker", "passivednsrecord"}
HOST_TYPES = {"hostname", "ipaddress", "host"}
CANONICAL_SOURCE = {"microsoft": "microsoft", "microsoftdefenderthreatintelligence": "microsoft",
                    "osint": "osint", "opensourceintelligence": "osint", "public": "public"}
FILTER_ORDER = ("source", "artifact-type", "seen-since", "min-reputation")


def pct(text: str) -> str:
    return urllib.parse.quote(text, safe="-._~")


def type_name(artifact) -> str:
    if not isinstance(artifact, dict):
        return ""
    return (artifact.get("@odata.type") or "").lstrip("#").split(".")[-1].lower()


def host_key(artifact):
    """The host enrichment looks up (docs/live-mode.md: hostname and IP indicators), or None."""
    if type_name(artifact) not in HOST_TYPES:
        return None
    host = (artifact.get("id") or "").strip()
    if not host or "/" in host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.rstrip(".").lower()


def parse_date(text):
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def value_type(artifact):
    """What docs/mapping.md says an artifact's value classifies as, for the value types these tests
    use (url, sha256); None for anything else."""
    kind_table = {"url": "url", "uri": "url", "link": "url", "sha256": "sha256",
                  "filehashsha256": "sha256", "hash": "hash", "filehash": "hash"}
    if type_name(artifact) != "unclassifiedartifact":
        return None
    raw = (artifact.get("value") or artifact.get("id") or "").strip()
    kind = kind_table.get(re.sub(r"[^a-z0-9]", "", (artifact.get("kind") or "").lower()), "sniff")
    is_sha256 = re.fullmatch(r"[0-9a-fA-F]{64}", raw.replace(":", "")) is not None
    if kind == "url" or (kind == "sniff" and "://" in raw.replace("hxxp", "http")):
        return "url"
    if kind in ("sha256", "hash", "sniff") and is_sha256:
        return "sha256"
    return None


@dataclass
class Record:
    profile_id: str
    raw: dict

    @property
    def id(self) -> str:
        return self.raw["id"]


@dataclass
class Samples:
    profiles: list            # raw profile records, in listing order
    indicators: dict          # profile id -> [Record] (parsable records only)
    bad_lines: dict           # profile id -> number of unparsable NDJSON lines
    reputation: dict          # host key -> score
    rejected_ids: set         # indicator ids the samples' expectation file says are rejected

    @classmethod
    def load(cls) -> "Samples":
        profiles = load_json(SAMPLES / "intelProfiles.json")["value"]
        indicators, bad_lines = {}, Counter()
        for profile in profiles:
            records = []
            for ext in ("json", "ndjson"):
                path = SAMPLES / "indicators" / ("%s.%s" % (pct(profile["id"]), ext))
                if not path.is_file():
                    continue
                if ext == "json":
                    records += load_json(path)["value"]
                    continue
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        bad_lines[profile["id"]] += 1
            indicators[profile["id"]] = [Record(profile["id"], r) for r in records]
        reputation = {}
        for path in (SAMPLES / "reputation").glob("*.json"):
            reputation[urllib.parse.unquote(path.stem)] = load_json(path)["score"]
        expected = load_json(SAMPLES_EXPECTED)
        rejected_ids = {r["id"] for r in expected["rejected_records"] if r["record"] == "indicator"}
        return cls(profiles, indicators, bad_lines, reputation, rejected_ids)

    def by_title(self, title: str) -> dict:
        return next(p for p in self.profiles if p["title"] == title)


SAMPLE = Samples.load()


@dataclass
class Filters:
    """One set of filter options, as ctiport takes them and as this file evaluates them."""
    kind: str | None = None
    profiles: list = field(default_factory=list)
    sources: list = field(default_factory=list)          # canonical names
    graph_types: list = field(default_factory=list)      # lower-case Graph type names
    value_types: list = field(default_factory=list)      # url, sha256
    since: datetime | None = None
    min_reputation: int | None = None

    def profile_excluded_by(self, profile: dict):
        if self.profiles and profile["id"] not in self.profiles:
            return "profile"
        if self.kind and (profile.get("kind") or "").lower() != self.kind:
            return "kind"
        return None

    def indicator_excluded_by(self, raw: dict):
        artifact = raw.get("artifact")
        if self.sources and CANONICAL_SOURCE.get((raw.get("source") or "").lower()) not in self.sources:
            return "source"
        if self.graph_types or self.value_types:
            if type_name(artifact) not in self.graph_types and value_type(artifact) not in self.value_types:
                return "artifact-type"
        if self.since is not None:
            seen = [d for d in (parse_date(raw.get("firstSeenDateTime")), parse_date(raw.get("lastSeenDateTime"))) if d]
            if not seen or max(seen) < self.since:
                return "seen-since"
        if self.min_reputation is not None:
            score = self.reputation_of(artifact)
            if score is not None and score < self.min_reputation:
                return "min-reputation"
        return None

    @staticmethod
    def reputation_of(artifact):
        key = host_key(artifact)
        return SAMPLE.reputation.get(key) if key else None


@dataclass
class Expected:
    profile_ids: set
    exported_indicator_ids: set
    indicators: int
    filtered_by: Counter
    rejected: int
    skipped: int

    @property
    def filtered(self) -> int:
        return sum(self.filtered_by.values())


def expect(f: Filters, live: bool = False) -> Expected:
    """What an export with these filters must give. `live`: profiles the server leaves out
    ($filter=kind eq …) or that are not fetched (--profile: by id) never reach ctiport and are not
    counted; a profile fetched by id whose kind does not match is."""
    kept_profiles, filtered_by = [], Counter()
    for profile in SAMPLE.profiles:
        why = f.profile_excluded_by(profile)
        if why is None:
            kept_profiles.append(profile)
        elif not live or (why == "kind" and f.profiles):
            filtered_by[why] += 1
    exported, rejected, skipped = set(), 0, 0
    for profile in kept_profiles:
        rejected += 0 if live else SAMPLE.bad_lines[profile["id"]]  # the bad line never reaches the wire
        for record in SAMPLE.indicators[profile["id"]]:
            why = f.indicator_excluded_by(record.raw)
            if why:
                filtered_by[why] += 1
            elif record.id in SAMPLE.rejected_ids:
                rejected += 1
            elif type_name(record.raw.get("artifact")) in SKIPPED_TYPES:
                skipped += 1
            else:
                exported.add(record.id)
    return Expected({p["id"] for p in kept_profiles}, exported, len(exported), filtered_by,
                    rejected, skipped)


def profile_ids_in(objects) -> set:
    return {ref["external_id"] for o in objects if o["type"] in PROFILE_TYPES
            for ref in o.get("external_references", [])}


def indicator_ids_in(objects) -> set:
    return {ref["external_id"] for rel in relationships(objects, "indicates")
            for ref in rel.get("external_references", [])}


def assert_export_matches(run, summary: dict, objects: list, exp: Expected, describe: str) -> None:
    assert summary["exit_code"] == (EXIT_PARTIAL if exp.rejected else EXIT_OK), describe
    assert run.returncode == summary["exit_code"], describe
    assert profile_ids_in(objects) == exp.profile_ids, describe
    assert indicator_ids_in(objects) == exp.exported_indicator_ids, describe
    assert len(relationships(objects, "indicates")) == exp.indicators, describe
    assert summary["profiles"] == len(exp.profile_ids), describe
    assert summary["indicators"] == exp.indicators, describe
    assert summary["filtered"] == exp.filtered, (summary["filtered"], exp.filtered_by, describe)
    assert summary.get("filtered_by", {}) == dict(+exp.filtered_by), describe
    assert summary["rejected"] == exp.rejected, describe
    assert summary["skipped"] == exp.skipped, describe
    # Every indicator object is the subject of some kept indicates relationship.
    indicated = {rel["source_ref"] for rel in relationships(objects, "indicates")}
    assert {o["id"] for o in objects if o["type"] == "indicator"} == indicated, describe


def run_filtered(tmp_path: Path, f: Filters, *args):
    e = export(SAMPLES, tmp_path, *args)
    assert e.summary_path.is_file(), e.run.describe()
    assert_export_matches(e.run, e.summary, e.objects, expect(f), e.run.describe())
    return e


# --- each filter alone ---------------------------------------------------------------------------

def test_the_expectations_agree_with_the_sample_description():
    everything = expect(Filters())
    described = load_json(SAMPLES_EXPECTED)
    assert (everything.indicators, everything.skipped, everything.rejected) == (
        described["mappable_indicators"], described["skipped"], described["rejected"])
    assert everything.filtered == 0


@pytest.mark.parametrize("kind", ["actor", "tool"])
def test_kind_on_a_dump_counts_the_profiles_left_out(tmp_path, kind):
    e = run_filtered(tmp_path, Filters(kind=kind), "--kind", kind)
    assert_stix_ok(e.bundle_path)
    if kind == "tool":
        # The actors' files, among them the one with the malformed line, are not even read.
        assert e.summary["rejected"] == 0 and e.run.returncode == EXIT_OK, e.run.describe()


def test_profile_takes_the_profiles_given_in_that_order(tmp_path):
    pewter = SAMPLE.by_title("Pewter Sleet")["id"]          # '/', '+' and '=' in its id
    kestrel = SAMPLE.by_title("Kestrel Stealer")["id"]      # no indicators file
    storm = SAMPLE.by_title("Storm-2187")["id"]
    f = Filters(profiles=[storm, pewter, kestrel])
    e = run_filtered(tmp_path, f, "--profile", storm, "--profile", pewter, "--profile", kestrel,
                     "--profile", storm)
    assert e.summary["filtered_by"] == {"profile": 5}
    # Requested order: Storm-2187 before Pewter Sleet, so the indicator they share takes its
    # content (its first occurrence) from Storm-2187 as a live run fetching them by id would.
    profile_order = [o["name"] for o in e.objects if o["type"] == "threat-actor"]
    assert profile_order[:2] == ["Storm-2187", "Pewter Sleet"], profile_order
    assert_stix_ok(e.bundle_path)


def test_an_unknown_profile_id_is_rejected_and_the_rest_exported(tmp_path):
    cerium = "cerium"
    e = export(SAMPLES, tmp_path, "--profile", "no-such-profile", "--profile", cerium,
               expect_exit=EXIT_PARTIAL)
    assert e.summary["rejected"] == 1, e.summary
    [rejection] = e.summary["rejected_records"]
    assert rejection["id"] == "no-such-profile" and rejection["record"] == "profile", rejection
    assert "--profile" in rejection["reason"], rejection
    assert profile_ids_in(e.objects) == {cerium}
    assert indicator_ids_in(e.objects) == expect(Filters(profiles=[cerium])).exported_indicator_ids


@pytest.mark.parametrize("args,sources", [
    (["--source", "osint"], ["osint"]),
    (["--source", "microsoft,public"], ["microsoft", "public"]),
    (["--source", "PUBLIC", "--source", "openSourceIntelligence"], ["public", "osint"]),
], ids=["osint", "comma-list", "repeated-any-case-and-graph-spelling"])
def test_source_matches_both_graph_spellings(tmp_path, args, sources):
    e = run_filtered(tmp_path, Filters(sources=sources), *args)
    # The samples use both spellings of each source, so this proves both match.
    spellings = {(r.raw.get("source") or "") for rs in SAMPLE.indicators.values() for r in rs
                 if r.id in expect(Filters(sources=sources)).exported_indicator_ids}
    if "osint" in sources:
        assert {"osint", "openSourceIntelligence"} <= spellings, spellings
    if "microsoft" in sources:
        assert {"microsoft", "microsoftDefenderThreatIntelligence"} <= spellings, spellings
    assert_stix_ok(e.bundle_path)


@pytest.mark.parametrize("args,graph_types", [
    (["--artifact-type", "hostname"], ["hostname"]),
    (["--artifact-type", "IPADDRESS,sslCertificate"], ["ipaddress", "sslcertificate"]),
    (["--artifact-type", "hostCookie", "--artifact-type", "#microsoft.graph.security.passiveDnsRecord"],
     ["hostcookie", "passivednsrecord"]),
], ids=["hostname", "comma-list-any-case", "skipped-types"])
def test_artifact_type_by_graph_type(tmp_path, args, graph_types):
    e = run_filtered(tmp_path, Filters(graph_types=graph_types), *args)
    if graph_types == ["hostname"]:
        assert all(o["pattern"].startswith("[domain-name:value") for o in e.objects if o["type"] == "indicator")


def test_artifact_type_by_value_type(tmp_path):
    e = run_filtered(tmp_path, Filters(value_types=["url", "sha256"]), "--artifact-type", "url,SHA256")
    patterns = [o["pattern"] for o in e.objects if o["type"] == "indicator"]
    assert patterns and all(p.startswith(("[url:value", "[file:hashes.'SHA-256'")) for p in patterns), patterns
    assert any(p.startswith("[url:") for p in patterns) and any(p.startswith("[file:") for p in patterns)
    assert_stix_ok(e.bundle_path)


@pytest.mark.parametrize("since", ["2024-01-01", "2024-03-15T12:00:00+02:00"])
def test_seen_since(tmp_path, since):
    when = parse_date(since if "T" in since else since + "T00:00:00Z")
    e = run_filtered(tmp_path, Filters(since=when), "--seen-since", since)
    assert 0 < e.summary["indicators"] < 367 and e.summary["filtered_by"]["seen-since"] > 0, e.summary
    assert_stix_ok(e.bundle_path)


def test_min_reputation_leaves_out_only_scored_hosts_below_it(tmp_path):
    f = Filters(min_reputation=70)
    e = run_filtered(tmp_path, f, "--enrich", "reputation", "--min-reputation", "70")
    low = {host for host, score in SAMPLE.reputation.items() if score < 70}
    assert low and e.summary["filtered_by"] == {"min-reputation": expect(f).filtered}, (low, e.summary)
    names = {o["name"] for o in e.objects if o["type"] == "indicator"}
    assert not names & low, names & low
    assert {h for h, s in SAMPLE.reputation.items() if s >= 70} <= names
    # Hashes and URLs have no reputation and pass; so do hosts without a reputation record.
    assert any(o["pattern"].startswith("[file:") for o in e.objects if o["type"] == "indicator")
    assert "had no reputation score" in e.run.stderr, e.run.describe()
    # Every indicator a score lets through carries that score as its confidence.
    for o in e.objects:
        if o["type"] == "indicator" and o["name"] in SAMPLE.reputation:
            assert o["confidence"] == SAMPLE.reputation[o["name"]] >= 70, o


def test_min_reputation_zero_leaves_nothing_out(tmp_path):
    e = run_filtered(tmp_path, Filters(min_reputation=0), "--enrich", "hosts,reputation", "--min-reputation", "0")
    assert e.summary["filtered"] == 0


@pytest.mark.parametrize("enrich", [[], ["--enrich", "hosts"]], ids=["no-enrichment", "hosts-only"])
def test_min_reputation_without_reputation_enrichment_is_a_usage_error(tmp_path, enrich):
    e = export(SAMPLES, tmp_path, "--min-reputation", "50", *enrich)
    assert e.run.returncode == EXIT_USAGE, e.run.describe()
    assert "--enrich reputation" in e.run.stderr, e.run.describe()
    assert not e.bundle_path.exists() and not e.summary_path.exists()


@pytest.mark.parametrize("args,message", [
    (["--seen-since", "2024-01-01T00:00:00"], "--seen-since"),
    (["--seen-since", "last week"], "--seen-since"),
    (["--artifact-type", "filehash"], "unknown type 'filehash'"),
    (["--source", "darkweb"], "darkweb"),
    (["--kind", "campaign"], "campaign"),
    (["--enrich", "reputation", "--min-reputation", "101"], "101"),
])
def test_bad_filter_values_are_usage_errors(tmp_path, args, message):
    e = export(SAMPLES, tmp_path, *args)
    assert e.run.returncode == EXIT_USAGE, e.run.describe()
    assert message in e.run.stderr, e.run.describe()
    assert not e.bundle_path.exists()


# --- combined ------------------------------------------------------------------------------------

def test_every_filter_at_once(tmp_path):
    f = Filters(kind="actor", sources=["osint", "public"], graph_types=["hostname", "ipaddress"],
                value_types=["url"], since=parse_date("2023-06-01T00:00:00Z"), min_reputation=50)
    e = run_filtered(tmp_path, f, "--kind", "actor", "--source", "osint,public",
                     "--artifact-type", "hostname,ipAddress,url", "--seen-since", "2023-06-01",
                     "--enrich", "hosts,reputation", "--min-reputation", "50", "--observables")
    exp = expect(f)
    assert set(exp.filtered_by) >= {"kind", "source", "artifact-type", "seen-since"}, exp.filtered_by
    assert_stix_ok(e.bundle_path, allow_based_on_sco=True)


def test_a_kept_profile_whose_indicators_are_all_filtered_is_still_exported(tmp_path):
    f = Filters(sources=["public"], graph_types=["sslcertificate"])
    misp = tmp_path / "misp"
    e = run_filtered(tmp_path, f, "--source", "public", "--artifact-type", "sslCertificate",
                     "--to", "misp-feed:%s" % misp, "--to", "csv:%s" % (tmp_path / "i.csv"))
    assert e.summary["profiles"] == 8 and e.summary["indicators"] == 1, e.summary
    assert len(load_json(misp / "manifest.json")) == 8
    reports = [o for o in e.objects if o["type"] == "report"]
    assert len(reports) == 8
    # The sinks agree on what the filters let through.
    assert {s["indicators"] for s in e.summary["sinks"]} == {1}, e.summary["sinks"]
    assert_stix_ok(e.bundle_path)


def test_an_undated_indicator_is_left_out_by_seen_since(tmp_path):
    dump = tmp_path / "dump"
    (dump / "indicators").mkdir(parents=True)
    (dump / "intelProfiles.json").write_text(json.dumps({"value": [
        {"id": "p1", "kind": "actor", "title": "Dated", "firstActiveDateTime": "2025-01-01T00:00:00Z"}]}))
    (dump / "indicators" / "p1.json").write_text(json.dumps({"value": [
        {"id": "undated", "source": "osint",
         "artifact": {"@odata.type": "#microsoft.graph.security.hostname", "id": "undated.example"}},
        {"id": "recent", "source": "osint", "firstSeenDateTime": "2025-02-01T00:00:00Z",
         "artifact": {"@odata.type": "#microsoft.graph.security.hostname", "id": "recent.example"}}]}))
    unfiltered = export(dump, tmp_path / "all", expect_exit=EXIT_OK)
    assert indicator_ids_in(unfiltered.objects) == {"undated", "recent"}  # valid_from: the profile's date
    e = export(dump, tmp_path / "since", "--seen-since", "1970-01-01", expect_exit=EXIT_OK)
    assert indicator_ids_in(e.objects) == {"recent"}
    assert e.summary["filtered_by"] == {"seen-since": 1}


# --- live: the same objects as from the dump -----------------------------------------------------

def live_export(sim, out: Path, *extra):
    out.mkdir(parents=True, exist_ok=True)
    run = run_ctiport("export", *sim.source_args(), "--to", "stix:%s" % (out / "bundle.json"),
                      "--summary", out / "s.json", "--request-timeout", "5", "--rate", "200", *extra,
                      env_extra=sim.env())
    assert (out / "s.json").is_file(), run.describe()
    return run, load_json(out / "s.json"), load_json(out / "bundle.json")["objects"]


LIVE_CASES = {
    "kind-tool": (Filters(kind="tool"), ["--kind", "tool"]),
    "kind-actor-and-indicator-filters": (
        Filters(kind="actor", sources=["osint"], graph_types=["hostname", "ipaddress"]),
        ["--kind", "actor", "--source", "osint", "--artifact-type", "hostname,ipAddress"]),
    "profiles-in-order": (
        Filters(profiles=["592317596fa5e419bfda912f4c6c5aed965bd9c20aef2bd111ab9721326f666e",
                          "Pf6j03fguKw/tF0bT2EMv/VJteG0BFqo+A==", "cerium"]),
        ["--profile", "592317596fa5e419bfda912f4c6c5aed965bd9c20aef2bd111ab9721326f666e",
         "--profile", "Pf6j03fguKw/tF0bT2EMv/VJteG0BFqo+A==", "--profile", "cerium"]),
    "profiles-and-kind": (
        Filters(kind="tool", profiles=["cerium", "32b4c9764a8ebdc568da2324d5b5f6a79b3ba1b03a18c2ea59bf5bf4c057da38"]),
        ["--kind", "tool", "--profile", "cerium",
         "--profile", "32b4c9764a8ebdc568da2324d5b5f6a79b3ba1b03a18c2ea59bf5bf4c057da38"]),
}


@pytest.fixture(scope="module")
def sim():
    with running_sim("--dump", SAMPLES, "--page-size", "1000", "--rate", "1000") as sim:
        yield sim


@pytest.mark.parametrize("case", sorted(LIVE_CASES))
def test_live_filters_give_the_dump_objects(tmp_path, sim, case):
    f, args = LIVE_CASES[case]
    dump = export(SAMPLES, tmp_path / "dir", *args)
    assert_export_matches(dump.run, dump.summary, dump.objects, expect(f), dump.run.describe())
    sim.post("/_sim/reset-stats")
    run, summary, objects = live_export(sim, tmp_path / "live", *args)
    assert canonical_objects(objects) == canonical_objects(dump.objects), run.describe()
    assert_export_matches(run, summary, objects, expect(f, live=True), run.describe())
    # Only the profiles taken had their indicators fetched (one page each here).
    routes = sim.stats()["by_route"]
    assert routes.get("intelProfiles/{id}/indicators", 0) == len(expect(f).profile_ids), routes
    if f.profiles:
        assert routes.get("intelProfiles/{id}") == len(f.profiles) and "intelProfiles" not in routes, routes


def test_live_unknown_profile_is_rejected_like_on_the_dump(tmp_path, sim):
    run, summary, objects = live_export(sim, tmp_path / "live", "--profile", "no-such-profile",
                                        "--profile", "cerium")
    assert run.returncode == EXIT_PARTIAL, run.describe()
    assert [r["id"] for r in summary["rejected_records"]] == ["no-such-profile"], summary
    assert profile_ids_in(objects) == {"cerium"}


def test_live_enrichment_looks_up_only_hosts_of_indicators_the_filters_keep(tmp_path, sim):
    f = Filters(sources=["public"], min_reputation=70)
    args = ["--source", "public", "--enrich", "reputation", "--min-reputation", "70"]
    dump = export(SAMPLES, tmp_path / "dir", *args)
    assert_export_matches(dump.run, dump.summary, dump.objects, expect(f), dump.run.describe())
    sim.post("/_sim/reset-stats")
    run, summary, objects = live_export(sim, tmp_path / "live", *args)
    assert canonical_objects(objects) == canonical_objects(dump.objects), run.describe()
    # Hosts of the indicators --source keeps (the lookup is what --min-reputation then needs).
    wanted_hosts = {host_key(r.raw.get("artifact")) for rs in SAMPLE.indicators.values() for r in rs
                    if f.indicator_excluded_by(r.raw) in (None, "min-reputation")} - {None}
    routes = sim.stats()["by_route"]
    assert routes.get("hosts/{id}/reputation") == len(wanted_hosts), (routes, sorted(wanted_hosts))
