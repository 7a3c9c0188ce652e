"""`--to csv:<file>`: RFC 4180 rows, one per indicator occurrence, read back with Python's csv
module and compared with the STIX bundle of the same run; columns chosen with --csv-columns;
spreadsheet formulas neutralized."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from e2e_util import (EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, SAMPLES, by_type, load_json,
                      relationships, run_ctiport)

DEFAULT_COLUMNS = ["value", "type", "profile_id", "profile_title", "kind", "source", "first_seen",
                   "last_seen", "confidence", "tlp", "stix_id"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PROFILE_TYPES = ("threat-actor", "intrusion-set", "tool")


def export_csv(src: Path, out: Path, *extra, expect_exit: int):
    out.mkdir(parents=True, exist_ok=True)
    r = run_ctiport("export", "--from", "dir:%s" % src, "--to", "csv:%s" % (out / "i.csv"),
                    "--to", "stix:%s" % (out / "bundle.json"), "--summary", out / "s.json",
                    "--no-progress", *extra)
    assert r.returncode == expect_exit, r.describe()
    return out / "i.csv"


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, strict=True))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def samples_csv(tmp_path_factory) -> Path:
    return export_csv(SAMPLES, tmp_path_factory.mktemp("csv-samples"), expect_exit=EXIT_PARTIAL)


def test_csv_is_rfc4180_with_the_default_header(samples_csv):
    raw = samples_csv.read_bytes()
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b""), "line ends must be CRLF"
    header, rows = read_rows(samples_csv)
    assert header == DEFAULT_COLUMNS
    assert rows and all(len(row) == len(header) for row in rows)


def test_one_row_per_indicator_occurrence_matching_the_stix_relationships(samples_csv):
    out = samples_csv.parent
    summary = load_json(out / "s.json")
    objects = load_json(out / "bundle.json")["objects"]
    header, rows = read_rows(samples_csv)
    rows = [dict(zip(header, row)) for row in rows]
    assert len(rows) == summary["indicators"]
    sink = next(s for s in summary["sinks"] if s["sink"].startswith("csv:"))
    assert sink["status"] == "ok" and sink["objects"] == len(rows)
    profile_refs = {}
    for o in objects:
        if o["type"] in PROFILE_TYPES:
            profile_refs[o["external_references"][0]["external_id"]] = o["id"]
    indicators = {o["id"]: o for o in by_type(objects, "indicator")}
    from_csv = {(row["stix_id"], profile_refs[row["profile_id"]]) for row in rows}
    from_stix = {(r["source_ref"], r["target_ref"]) for r in relationships(objects, "indicates")}
    assert from_csv == from_stix
    profiles = {p["id"]: p for p in load_json(SAMPLES / "intelProfiles.json")["value"]}
    for row in rows:
        indicator = indicators[row["stix_id"]]
        assert indicator["name"] == row["value"]
        profile = profiles[row["profile_id"]]
        assert (row["profile_title"], row["kind"]) == (profile["title"], profile["kind"])
        assert row["tlp"] == "amber"
        assert row["confidence"] == str(indicator["confidence"])
        assert row["first_seen"] == "" or row["first_seen"].endswith("Z")


def test_no_cell_starts_with_a_formula_character(samples_csv):
    _, rows = read_rows(samples_csv)
    bad = [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]
    assert bad == []


def test_formula_like_cells_are_neutralized(tmp_path):
    dump = tmp_path / "dump"
    (dump / "indicators").mkdir(parents=True)
    profile = {"id": "p1", "kind": "tool", "title": "=HYPERLINK(\"http://evil.example\",\"x\")",
               "firstActiveDateTime": "2024-01-01T00:00:00Z"}
    (dump / "intelProfiles.json").write_text(json.dumps({"value": [profile]}), encoding="utf-8")
    indicators = [
        {"id": "i1", "source": "osint", "firstSeenDateTime": "2024-02-02T00:00:00Z",
         "artifact": {"@odata.type": "#microsoft.graph.security.unclassifiedArtifact",
                      "kind": "email", "value": "-cmd@evil.example"}},
        {"id": "i2", "source": "osint", "firstSeenDateTime": "2024-02-02T00:00:00Z",
         "artifact": {"@odata.type": "#microsoft.graph.security.unclassifiedArtifact",
                      "kind": "email", "value": "+1@evil.example"}},
        {"id": "i3", "source": "osint", "firstSeenDateTime": "2024-02-02T00:00:00Z",
         "artifact": {"@odata.type": "#microsoft.graph.security.unclassifiedArtifact",
                      "kind": "url", "value": "http://evil.example/a,b\"c"}},
    ]
    (dump / "indicators" / "p1.json").write_text(json.dumps({"value": indicators}), encoding="utf-8")
    path = export_csv(dump, tmp_path / "out", "--csv-columns", "value,profile_title",
                      expect_exit=EXIT_OK)
    header, rows = read_rows(path)
    assert header == ["value", "profile_title"]
    assert rows == [
        ["'-cmd@evil.example", "'=HYPERLINK(\"http://evil.example\",\"x\")"],
        ["'+1@evil.example", "'=HYPERLINK(\"http://evil.example\",\"x\")"],
        ["http://evil.example/a,b\"c", "'=HYPERLINK(\"http://evil.example\",\"x\")"],
    ]


def test_columns_are_selected_and_reordered(tmp_path, samples_csv):
    path = export_csv(SAMPLES, tmp_path, "--csv-columns", "stix_id,value,indicator_id",
                      expect_exit=EXIT_PARTIAL)
    header, rows = read_rows(path)
    assert header == ["stix_id", "value", "indicator_id"]
    default_header, default_rows = read_rows(samples_csv)
    assert [(r[0], r[1]) for r in rows] == [
        (r[default_header.index("stix_id")], r[default_header.index("value")]) for r in default_rows]
    assert all(r[2] for r in rows)


@pytest.mark.parametrize("columns, message", [
    ("value,nope", "unknown CSV column 'nope'"),
    ("value,value", "given twice"),
    ("", "empty column name"),
])
def test_bad_column_lists_are_usage_errors(tmp_path, columns, message):
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "csv:%s" % (tmp_path / "i.csv"),
                    "--csv-columns", columns, "--no-progress")
    assert r.returncode == EXIT_USAGE, r.describe()
    assert message in r.stderr, r.stderr
    assert not (tmp_path / "i.csv").exists()


def test_a_second_identical_run_gives_an_identical_csv(tmp_path, samples_csv):
    again = export_csv(SAMPLES, tmp_path, expect_exit=EXIT_PARTIAL)
    assert again.read_bytes() == samples_csv.read_bytes()
