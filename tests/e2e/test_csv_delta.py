"""`--csv-mode delta` with `--state`: a CSV file of what changed since the sink's last run, each
row led by an `action` column (new, changed, revoked).

The oracle is a stateless snapshot export of the same dump (`--csv-mode snapshot`, no state): the
first delta run of a new sink must hold exactly its rows, all `new`; an unchanged rerun only the
header; and after an edit of the dump (one indicator removed from a profile, another's
lastSeenDateTime moved) exactly a `revoked` row for the first and a `changed` row for the second,
whose cells are the snapshot's with the new last_seen. Rows are read with Python's csv module.
"""
from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from e2e_util import EXIT_PARTIAL, SAMPLES, load_json, run_ctiport

COLUMNS = ["value", "type", "profile_id", "profile_title", "kind", "source", "first_seen",
           "last_seen", "confidence", "tlp", "stix_id", "indicator_id"]
# Cells a revoked row leaves empty: the membership the store remembers has no such facts.
REVOKED_EMPTY = ("source", "first_seen", "last_seen", "confidence", "indicator_id")
NEW_LAST_SEEN = "2026-06-01T12:00:00.000Z"


def copy_dump(tmp_path: Path) -> Path:
    dump = tmp_path / "dump"
    shutil.copytree(SAMPLES, dump)
    return dump


def export(dump: Path, csv_path: Path, summary: Path, *extra) -> dict:
    """One export to `csv:<csv_path>` with every column; returns the run summary. The samples
    hold malformed records on purpose, so every run is partial (exit 3)."""
    r = run_ctiport("export", "--from", "dir:%s" % dump, "--to", "csv:%s" % csv_path,
                    "--csv-columns", ",".join(COLUMNS), "--summary", summary, "--no-progress",
                    *extra)
    assert r.returncode == EXIT_PARTIAL, r.describe()
    return load_json(summary)


def read_csv(path: Path) -> tuple[list, list]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, strict=True))
    assert rows, "no header row in %s" % path
    return rows[0], rows[1:]


def snapshot_rows(dump: Path, out: Path) -> list:
    """The stateless snapshot of `dump`: every current occurrence, as dicts."""
    out.mkdir(parents=True, exist_ok=True)
    export(dump, out / "snapshot.csv", out / "snapshot.json")
    header, rows = read_csv(out / "snapshot.csv")
    assert header == COLUMNS
    assert rows, "the samples give rows"
    return [dict(zip(header, row)) for row in rows]


def as_delta(rows: list, action: str) -> Counter:
    """Rows as the delta writes them (action first), counted, for an order-free comparison."""
    return Counter(tuple([action] + [row[c] for c in COLUMNS]) for row in rows)


def delta_run(dump: Path, csv_path: Path, state: Path, summary: Path) -> tuple[list, dict]:
    result = export(dump, csv_path, summary, "--csv-mode", "delta", "--state", state)
    header, rows = read_csv(csv_path)
    assert header == ["action"] + COLUMNS, header
    return rows, result


def sink_of(summary: dict) -> dict:
    return next(s for s in summary["sinks"] if s["sink"].startswith("csv:"))


def indicator_file(dump: Path, profile_id: str) -> Path:
    return dump / "indicators" / ("%s.json" % quote(profile_id, safe=""))


def pick_occurrences(dump: Path, rows: list) -> tuple[dict, dict]:
    """Two occurrences of two different profiles whose listing is a plain JSON file (the samples'
    NDJSON listing has an unreadable line, which holds its revocations back), each value listed
    once in the whole dump, so that the edit touches exactly one row."""
    values = Counter(row["value"] for row in rows)
    ids = Counter(row["indicator_id"] for row in rows)
    by_profile = {}
    for row in rows:
        if values[row["value"]] != 1 or ids[row["indicator_id"]] != 1:
            continue
        if not indicator_file(dump, row["profile_id"]).is_file():
            continue
        by_profile.setdefault(row["profile_id"], []).append(row)
    profiles = sorted(by_profile)
    assert len(profiles) >= 2, "the samples should have two clean JSON listings: %s" % profiles
    return by_profile[profiles[0]][0], by_profile[profiles[1]][-1]


def edit_listing(dump: Path, profile_id: str, edit) -> None:
    path = indicator_file(dump, profile_id)
    doc = load_json(path)
    doc["value"] = edit(doc["value"])
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_a_delta_sends_everything_new_then_nothing_then_exactly_the_edit(tmp_path):
    dump = copy_dump(tmp_path)
    state = tmp_path / "state.db"
    # The same `csv:<file>` every run: a sink is known to the store by its --to.
    out = tmp_path / "changes.csv"
    before = snapshot_rows(dump, tmp_path / "before")

    rows, summary = delta_run(dump, out, state, tmp_path / "s1.json")
    assert Counter(map(tuple, rows)) == as_delta(before, "new")
    assert sink_of(summary)["objects"] == len(rows)
    assert sink_of(summary)["acknowledged"] is True, sink_of(summary)

    rows, summary = delta_run(dump, out, state, tmp_path / "s2.json")
    assert rows == [], "an unchanged rerun writes the header alone: %s" % rows[:5]
    assert out.read_bytes().count(b"\r\n") == 1
    assert sink_of(summary)["objects"] == 0

    removed, changed = pick_occurrences(dump, before)
    assert changed["last_seen"] != NEW_LAST_SEEN
    edit_listing(dump, removed["profile_id"],
                 lambda items: [i for i in items if i.get("id") != removed["indicator_id"]])

    def move_last_seen(items):
        hits = [i for i in items if i.get("id") == changed["indicator_id"]]
        assert len(hits) == 1, changed
        hits[0]["lastSeenDateTime"] = NEW_LAST_SEEN
        return items

    edit_listing(dump, changed["profile_id"], move_last_seen)
    after = snapshot_rows(dump, tmp_path / "after")
    # The oracle agrees with the edit: one row less, one row different.
    assert len(after) == len(before) - 1
    expected_changed = next(r for r in after if r["indicator_id"] == changed["indicator_id"])
    assert expected_changed == dict(changed, last_seen=NEW_LAST_SEEN)

    rows, summary = delta_run(dump, out, state, tmp_path / "s3.json")
    assert len(rows) == 2, "expected one revoked and one changed row, got:\n%s" % (
        "\n".join(map(str, rows)))
    by_action = {row[0]: dict(zip(COLUMNS, row[1:])) for row in rows}
    assert sorted(by_action) == ["changed", "revoked"], rows

    assert by_action["changed"] == expected_changed

    revoked = by_action["revoked"]
    for column in ("value", "type", "profile_id", "stix_id", "tlp"):
        assert revoked[column] == removed[column], (column, revoked, removed)
    for column in REVOKED_EMPTY:
        assert revoked[column] == "", (column, revoked)
    # The profile's title and kind when its record came before in the run, else empty.
    assert (revoked["profile_title"], revoked["kind"]) in (
        ("", ""), (removed["profile_title"], removed["kind"])), revoked

    sink = sink_of(summary)
    assert sink["objects"] == 2
    assert sink["delta"]["revoked"] >= 1 and sink["delta"]["changed"] >= 1, sink
    assert sink["acknowledged"] is True, sink


def test_a_delta_without_state_is_every_row_new(tmp_path):
    before = snapshot_rows(SAMPLES, tmp_path / "snapshot")
    out = tmp_path / "delta.csv"
    for run in (1, 2):
        summary = export(SAMPLES, out, tmp_path / ("s%d.json" % run), "--csv-mode", "delta")
        header, rows = read_csv(out)
        assert header == ["action"] + COLUMNS
        assert Counter(map(tuple, rows)) == as_delta(before, "new"), "run %d" % run
        assert sink_of(summary)["objects"] == len(rows)


def test_the_config_file_sets_the_mode_of_one_csv_sink(tmp_path):
    dump = copy_dump(tmp_path)
    delta, snapshot = tmp_path / "delta.csv", tmp_path / "snapshot.csv"
    config = tmp_path / "ctiport.toml"
    config.write_text("\n".join([
        'state = "%s"' % (tmp_path / "state.db"),
        "[source]",
        'from = "dir:%s"' % dump,
        "[[sinks]]",
        'to = "csv:%s"' % delta,
        'csv_mode = "delta"',
        "[[sinks]]",
        'to = "csv:%s"' % snapshot,
        "[logging]",
        "progress = false",
        "",
    ]), encoding="utf-8")
    for run in (1, 2):
        r = run_ctiport("export", "--config", config)
        assert r.returncode == EXIT_PARTIAL, r.describe()
        delta_header, delta_rows = read_csv(delta)
        snapshot_header, snapshot_rows_ = read_csv(snapshot)
        assert delta_header[0] == "action" and delta_header[1:] == snapshot_header
        assert snapshot_rows_, "a snapshot lists every row on every run"
        if run == 1:
            assert sorted(row[1:] for row in delta_rows) == sorted(snapshot_rows_)
            assert {row[0] for row in delta_rows} == {"new"}
        else:
            assert delta_rows == [], delta_rows[:5]
