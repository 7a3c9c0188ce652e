"""Helpers for ctiport's end-to-end tests (written against docs/contracts.md).

The binary is $CTIPORT_BIN, default <repo>/target/debug/ctiport (build it first: `cargo build`).
Oracles are hard imports: a missing stix2-validator / stix2 / stix2-patterns is a collection
ERROR, never a skip.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "oracles"))

import check_stix  # noqa: E402  (hard import: pulls in stix2validator, stix2, stix2patterns)

BIN = Path(os.environ.get("CTIPORT_BIN") or REPO / "target" / "debug" / "ctiport")
SAMPLES = REPO / "samples" / "mdti"
SAMPLES_EXPECTED = REPO / "samples" / "mdti-expected.json"
ADVERSARIAL = REPO / "tests" / "fixtures" / "adversarial"
MALFORMED = REPO / "tests" / "fixtures" / "malformed"
RUN_TIMEOUT = 180

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

PROFILE_TYPES = ("threat-actor", "intrusion-set", "tool")


@dataclass
class Run:
    args: list
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list:
        return [ANSI_RE.sub("", line) for line in self.stderr.splitlines()]

    def describe(self) -> str:
        return "ctiport %s\nexit %s\n--- stderr (tail) ---\n%s" % (
            " ".join(map(str, self.args)), self.returncode, "\n".join(self.stderr_lines[-40:]))


def run_ctiport(*args, cwd: Path = REPO, env_extra: dict | None = None) -> Run:
    assert BIN.is_file(), (
        "ctiport binary not found at %s (run `cargo build`, or set CTIPORT_BIN)" % BIN)
    env = dict(os.environ, NO_COLOR="1", RUST_BACKTRACE="1", **(env_extra or {}))
    env.pop("RUST_LOG", None)
    p = subprocess.run([str(BIN), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    return Run(list(args), p.returncode, p.stdout, p.stderr)


@dataclass
class Export:
    run: Run
    out: Path
    bundle_path: Path
    summary_path: Path

    @property
    def bundle(self) -> dict:
        return load_json(self.bundle_path)

    @property
    def objects(self) -> list:
        return self.bundle["objects"]

    @property
    def summary(self) -> dict:
        return load_json(self.summary_path)


def export(src: Path, out: Path, *extra, expect_exit: int | None = None) -> Export:
    """`ctiport export --from dir:<src> --to stix:<out>/bundle.json --summary <out>/s.json ...`"""
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / "bundle.json"
    summary = out / "s.json"
    r = run_ctiport("export", "--from", "dir:%s" % src, "--to", "stix:%s" % bundle,
                    "--summary", summary, *extra)
    if expect_exit is not None:
        assert r.returncode == expect_exit, r.describe()
        assert bundle.is_file(), "no bundle written\n" + r.describe()
        assert summary.is_file(), "no summary written\n" + r.describe()
    return Export(r, out, bundle, summary)


def load_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_objects(objects) -> list:
    return sorted(canonical(o) for o in objects)


def by_type(objects, type_) -> list:
    return [o for o in objects if o.get("type") == type_]


def relationships(objects, rtype) -> list:
    return [o for o in objects if o.get("type") == "relationship"
            and o.get("relationship_type") == rtype]


def assert_stix_ok(path, allow_based_on_sco: bool = False) -> None:
    """Run the full oracle (tests/oracles/check_stix.py) on a bundle file or a directory."""
    problems = check_stix.check_paths([path], allow_based_on_sco=allow_based_on_sco)
    if problems:
        shown = "\n".join(map(check_stix.format_problem, problems[:60]))
        more = "\n... and %d more" % (len(problems) - 60) if len(problems) > 60 else ""
        pytest.fail("%d STIX problem(s) in %s:\n%s%s" % (len(problems), path, shown, more))


def expected_rejections(expected: dict) -> list:
    """Rejected-record expectations from an EXPECTED.json (key spelled differently per file)."""
    for key in ("rejected_records", "rejected"):
        if isinstance(expected.get(key), list):
            return expected[key]
    raise AssertionError("no list of rejected records in expectation file: keys %s" % list(expected))


def assert_rejections_reported(run: Run, summary: dict, rejections: list) -> None:
    """Each expected rejected record: a WARN line on stderr with its id and reason, and an
    entry in summary.rejected_records with the same record kind and a matching reason."""
    assert summary["rejected"] == len(rejections), summary
    got = {r["id"]: r for r in summary["rejected_records"]}
    assert len(summary["rejected_records"]) == len(rejections), summary["rejected_records"]
    lines = run.stderr_lines
    for exp in rejections:
        rid, want = exp["id"], exp["reason_contains"].lower()
        assert rid in got, "rejected record %r missing from summary.rejected_records %s" % (
            rid, sorted(got))
        entry = got[rid]
        assert want in entry["reason"].lower(), (rid, entry)
        if "record" in exp:
            assert entry["record"] == exp["record"], (rid, entry)
        hits = [ln for ln in lines if rid in ln]
        assert hits, "rejected record %r not logged on stderr\n%s" % (rid, run.describe())
        warn_hits = [ln for ln in hits if "warn" in ln.lower()]
        assert warn_hits, "rejected record %r logged, but not at WARN: %s" % (rid, hits)
        assert any(want in ln.lower() for ln in warn_hits), (
            "WARN line for %r does not carry the reason (%r): %s" % (rid, want, warn_hits))
