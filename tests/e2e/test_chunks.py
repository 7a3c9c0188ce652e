"""Chunked bundle sink `stix:<dir>/`: every chunk is a self-contained, valid bundle and the
chunks together carry exactly the objects of the single-bundle export."""
from __future__ import annotations

import re

import pytest

from e2e_util import (EXIT_PARTIAL, SAMPLES, assert_stix_ok, canonical, load_json, run_ctiport)

CHUNK_NAME = re.compile(r"^bundle-(\d{5})\.json$")


def chunked_export(tmp_path, *limits):
    out = tmp_path / "chunks"
    summary = tmp_path / "s.json"
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "stix:%s/" % out,
                    "--summary", summary, *limits)
    assert r.returncode == EXIT_PARTIAL, r.describe()
    files = sorted(out.iterdir())
    names = [f.name for f in files]
    assert all(CHUNK_NAME.match(n) for n in names), names
    assert [int(CHUNK_NAME.match(n).group(1)) for n in names] == list(range(1, len(files) + 1)), \
        "chunk files are not numbered bundle-00001.json, bundle-00002.json, ...: %s" % names
    assert len(files) >= 2, "expected several chunks, got %s" % names
    return out, files, load_json(summary)


def assert_chunks_equal_single(files, single_objects):
    copies = {}
    bundle_ids = set()
    for f in files:
        b = load_json(f)
        assert b["id"] not in bundle_ids, "two chunks share bundle id %s" % b["id"]
        bundle_ids.add(b["id"])
        for o in b["objects"]:
            copies.setdefault(o["id"], set()).add(canonical(o))
    differing = {k: v for k, v in copies.items() if len(v) > 1}
    assert not differing, "same id, different content across chunks: %s" % sorted(differing)[:5]
    single = {o["id"]: canonical(o) for o in single_objects}
    assert set(copies) == set(single), (
        "only in chunks: %s; only in single bundle: %s"
        % (sorted(set(copies) - set(single))[:5], sorted(set(single) - set(copies))[:5]))
    for k, v in copies.items():
        assert v == {single[k]}, "object %s differs between chunked and single export" % k


@pytest.mark.parametrize("limits,check", [
    (("--max-bundle-objects", "50"), lambda f, b: len(b["objects"]) <= 50),
    (("--max-bundle-bytes", "20000"), lambda f, b: f.stat().st_size <= 20000),
], ids=["max-objects-50", "max-bytes-20000"])
def test_chunked_export(tmp_path, samples_export, limits, check):
    out, files, summary = chunked_export(tmp_path, *limits)
    total = 0
    for f in files:
        b = load_json(f)
        assert b["type"] == "bundle" and b["objects"], f.name
        assert check(f, b), "%s exceeds %s (%d objects, %d bytes)" % (
            f.name, " ".join(limits), len(b["objects"]), f.stat().st_size)
        total += len(b["objects"])
    # each chunk on its own: valid and self-contained (refs check + --enforce-refs)
    assert_stix_ok(out)
    assert_chunks_equal_single(files, samples_export.objects)
    sink = summary["sinks"][0]
    assert sink["status"] == "ok", sink
    # shared objects (producer identity, marking, referenced SDOs) repeat in every chunk that
    # needs them, so the sink count lies between the distinct and the written number
    assert len(samples_export.objects) <= sink["objects"] <= total, (sink, total)
