"""`ctiport validate` and command-line usage errors."""
from __future__ import annotations

import copy
import json

import pytest

from e2e_util import EXIT_PARTIAL, EXIT_USAGE, SAMPLES, load_json, relationships, run_ctiport

VALID, INVALID = 0, 1


def first_of(bundle, type_):
    return next(o for o in bundle["objects"] if o["type"] == type_)


def corrupt_dangling_ref(b):
    first_of(b, "relationship")["target_ref"] = "threat-actor--00000000-0000-4000-8000-000000000000"


def corrupt_timestamp(b):
    ind = first_of(b, "indicator")
    ind["created"] = ind["modified"] = "2024-05-01T00:00:00.00Z"


def corrupt_pattern_escape(b):
    first_of(b, "indicator")["pattern"] = "[url:value = 'http://evil.example.com/a\\b']"


def test_validate_accepts_ctiport_output(samples_export):
    r = run_ctiport("validate", samples_export.bundle_path)
    assert r.returncode == VALID, r.describe()


def test_validate_accepts_chunk_directory(tmp_path):
    out = tmp_path / "chunks"
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "stix:%s/" % out,
                    "--max-bundle-objects", "200")
    assert r.returncode == EXIT_PARTIAL, r.describe()
    r = run_ctiport("validate", out)
    assert r.returncode == VALID, r.describe()


@pytest.mark.parametrize("corrupt", [corrupt_dangling_ref, corrupt_timestamp,
                                     corrupt_pattern_escape],
                         ids=["dangling-ref", "two-digit-timestamp", "bad-pattern-escape"])
def test_validate_rejects_corrupted_bundle(tmp_path, samples_export, corrupt):
    bundle = copy.deepcopy(samples_export.bundle)
    assert relationships(bundle["objects"], "indicates")
    corrupt(bundle)
    path = tmp_path / "corrupt.json"
    path.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    r = run_ctiport("validate", path)
    assert r.returncode == INVALID, r.describe()
    # (test_oracle_selftest.py proves the oracle rejects the same three corruptions)


def test_validate_rejects_corrupted_chunk_in_directory(tmp_path, samples_export):
    good = tmp_path / "dir" / "bundle-00001.json"
    good.parent.mkdir()
    good.write_text(json.dumps(samples_export.bundle), encoding="utf-8")
    bad = load_json(good)
    corrupt_dangling_ref(bad)
    (good.parent / "bundle-00002.json").write_text(json.dumps(bad), encoding="utf-8")
    r = run_ctiport("validate", good.parent)
    assert r.returncode == INVALID, r.describe()


@pytest.mark.parametrize("args", [
    ["export", "--to", "stix:{out}/b.json"],                                     # no --from
    ["export", "--from", "dir:{samples}", "--to", "bogus:{out}/b.json"],         # unknown sink
    ["export", "--from", "dir:{samples}"],                                       # no --to
    ["export", "--from", "nosuch:{samples}", "--to", "stix:{out}/b.json"],       # unknown source
    ["export", "--from", "dir:{samples}", "--to", "stix:{out}/b.json", "--tlp", "purple"],
    ["export", "--from", "dir:{samples}", "--to", "stix:{out}/b.json", "--marking-set", "tlp3"],
    ["export", "--from", "dir:{samples}", "--to", "stix:{out}/b.json", "--actor-as", "nobody"],
    ["export", "--from", "dir:{samples}", "--to", "stix:{out}/b.json",
     "--max-bundle-objects", "many"],
    ["frobnicate"],                                                              # no such command
    [],                                                                          # no command
], ids=["missing-from", "unknown-sink-scheme", "missing-to", "unknown-source-scheme", "bad-tlp",
        "bad-marking-set", "bad-actor-as", "bad-number", "unknown-command", "no-command"])
def test_usage_errors_exit_2(tmp_path, args):
    argv = [a.format(out=tmp_path, samples=SAMPLES) for a in args]
    r = run_ctiport(*argv)
    assert r.returncode == EXIT_USAGE, r.describe()
    assert r.stderr.strip(), "usage error without a message on stderr"
    assert not (tmp_path / "b.json").exists(), "output written despite a usage error"
