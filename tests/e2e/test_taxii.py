"""`--to taxii:<collection url>` against a real medallion 3.0.0 server, read back with
taxii2-client 2.3.0.

The server announces a small max_content_length (20,000 bytes), so the samples travel in many
envelopes. medallion reports re-pushed objects as failures ("Unable to process object"); ctiport
must recognize them as already present and succeed without adding versions.
"""
from __future__ import annotations

import json

import pytest

from e2e_util import (EXIT_FAILED, EXIT_PARTIAL, EXIT_USAGE, SAMPLES, canonical, load_json,
                      run_ctiport)
from medallion_server import (PASSWORD, READ_ONLY, USER, WRITABLE, Medallion, post_count,
                              read_all, start_medallion)

MAX_CONTENT_LENGTH = 20000


@pytest.fixture
def taxii_server(tmp_path):
    server = start_medallion(tmp_path / "medallion", max_content_length=MAX_CONTENT_LENGTH)
    try:
        yield server
    finally:
        server.stop()
    assert server.process.poll() is not None, "medallion is still running"


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("TAXII_USERNAME", USER)
    monkeypatch.setenv("TAXII_PASSWORD", PASSWORD)


def push(server: Medallion, *extra, collection_id: str = WRITABLE):
    return run_ctiport("export", "--from", "dir:%s" % SAMPLES,
                       "--to", "taxii:" + server.collection_url(collection_id),
                       "--no-progress", *extra)


def compact_size(obj) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def test_push_reads_back_exactly_the_bundle_and_a_repush_adds_nothing(
        taxii_server, credentials, tmp_path):
    bundle, summary = tmp_path / "b.json", tmp_path / "s.json"
    r = push(taxii_server, "--to", "stix:%s" % bundle, "--summary", summary)
    assert r.returncode == EXIT_PARTIAL, r.describe()
    objects = load_json(bundle)["objects"]
    by_id = {o["id"]: o for o in objects}
    assert len(by_id) == len(objects)

    pushed = read_all(taxii_server)
    pushed_ids = [o["id"] for o in pushed]
    assert len(pushed_ids) == len(set(pushed_ids)), "an object was stored twice"
    assert set(pushed_ids) == set(by_id), (
        "only in the collection: %s; only in the bundle: %s"
        % (sorted(set(pushed_ids) - set(by_id))[:5], sorted(set(by_id) - set(pushed_ids))[:5]))
    for o in pushed:
        assert canonical(o) == canonical(by_id[o["id"]]), "object %s changed on the way" % o["id"]

    # Markings and producer travel with the objects that reference them.
    types = {o["type"] for o in pushed}
    assert {"identity", "marking-definition"} <= types, types
    for o in pushed:
        for ref in [o.get("created_by_ref"), *o.get("object_marking_refs", [])]:
            assert ref is None or ref in by_id, "%s references %s, not pushed" % (o["id"], ref)

    sink = next(s for s in load_json(summary)["sinks"] if s["sink"].startswith("taxii:"))
    assert sink["status"] == "ok" and sink["objects"] == len(objects), sink

    # Many envelopes, each under max_content_length: no 413, and at least as many POSTs as the
    # bytes require.
    posts = post_count(taxii_server)
    assert set(posts) == {"202"}, posts
    total = sum(compact_size(o) for o in objects)
    assert posts["202"] >= max(2, total // MAX_CONTENT_LENGTH), (posts, total)

    # Again: medallion answers with a failure for every object; ctiport recognizes duplicates.
    again = push(taxii_server, "--summary", summary)
    assert again.returncode == EXIT_PARTIAL, again.describe()
    assert "already present" in again.stderr, again.describe()
    sink = next(s for s in load_json(summary)["sinks"] if s["sink"].startswith("taxii:"))
    assert sink["status"] == "ok" and sink["objects"] == len(objects), sink
    versions = read_all(taxii_server, version="all")
    assert len(versions) == len(objects), "a re-push added %d versions" % (
        len(versions) - len(objects))


def test_wrong_password_fails_clearly_and_pushes_nothing(taxii_server, monkeypatch):
    wrong = "not-the-Password-7f3a"
    monkeypatch.setenv("TAXII_USERNAME", USER)
    monkeypatch.setenv("TAXII_PASSWORD", wrong)
    r = push(taxii_server)
    assert r.returncode == EXIT_FAILED, r.describe()
    text = r.stderr.lower()
    assert "authentication" in text and "taxii_password" in text, r.describe()
    assert wrong not in r.stderr, "the password appears in the log"
    assert read_all(taxii_server) == []
    assert post_count(taxii_server) == {}


def test_missing_credentials_are_named(taxii_server, monkeypatch):
    monkeypatch.delenv("TAXII_USERNAME", raising=False)
    monkeypatch.delenv("TAXII_PASSWORD", raising=False)
    r = push(taxii_server)
    assert r.returncode == EXIT_FAILED, r.describe()
    assert "TAXII_USERNAME" in r.stderr and "401" in r.stderr, r.describe()


def test_read_only_collection_is_a_clear_error(taxii_server, credentials):
    r = push(taxii_server, collection_id=READ_ONLY)
    assert r.returncode == EXIT_FAILED, r.describe()
    assert "read-only" in r.stderr and "can_write: false" in r.stderr, r.describe()
    assert read_all(taxii_server, READ_ONLY) == []
    assert post_count(taxii_server) == {}


def test_unknown_collection_names_the_url(taxii_server, credentials):
    r = push(taxii_server, collection_id="00000000-0000-4000-8000-000000000000")
    assert r.returncode == EXIT_FAILED, r.describe()
    assert "HTTP 404" in r.stderr and "collection" in r.stderr, r.describe()


@pytest.mark.parametrize("url,message", [
    ("http://ti.example/api1/collections/x/", "--taxii-allow-http"),
    ("https://ti.example/api1/", "collections/<collection-id>/"),
    ("https://admin:secret@ti.example/api1/collections/x/", "TAXII_USERNAME"),
], ids=["plain-http-remote", "not-a-collection", "password-in-url"])
def test_bad_targets_are_usage_errors(url, message):
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "taxii:" + url,
                    "--no-progress")
    assert r.returncode == EXIT_USAGE, r.describe()
    assert message in r.stderr, r.describe()
    assert "secret" not in r.stderr
