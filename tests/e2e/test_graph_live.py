"""Live mode (`--from graph`) against ctiport-sim, which serves a dump the way the reference says
the Microsoft Graph TI API does: $top/$skip paging with absolute nextLinks, 429 with fractional
Retry-After, injected 5xx, resets, truncated bodies, slow answers, token expiry, 401/403 modes.
"""
from __future__ import annotations

import time

from e2e_util import (EXIT_FAILED, EXIT_PARTIAL, EXIT_USAGE, SAMPLES, ADVERSARIAL, assert_stix_ok,
                      canonical_objects, export, load_json)
from sim_util import CLIENT_SECRET, graph_requests, live_export, objects_of, running_sim


def test_live_export_equals_dump_export_under_throttling_and_faults(tmp_path):
    reference = export(SAMPLES, tmp_path / "dir", expect_exit=EXIT_PARTIAL)
    with running_sim("--dump", SAMPLES, "--page-size", "7", "--rate", "40", "--retry-after-format", "fractional",
                     "--throttle-storm", "0.05", "--fault-rate", "0.15", "--faults", "503,504,500,reset,truncate,slow",
                     "--slow-ms", "300", "--fault-after", "2", "--seed", "7") as sim:
        run = live_export(sim, tmp_path / "live", "--rate", "40", "--concurrency", "4")
        stats = sim.stats()
    # The samples' one unparsable NDJSON line never reaches the wire, so the live run rejects one
    # record fewer; every object is the same.
    assert run.returncode == EXIT_PARTIAL, run.describe()
    assert objects_of(tmp_path / "live" / "bundle.json") == objects_of(reference.bundle_path)
    assert stats["throttled"] > 0 and sum(stats["faults"].values()) > 0, stats
    assert stats["early_requests"] == 0, "a request arrived before its Retry-After had passed: %s" % stats
    assert_stix_ok(tmp_path / "live" / "bundle.json")


def test_every_record_exactly_once_under_a_429_storm(tmp_path):
    reference = export(ADVERSARIAL, tmp_path / "dir", expect_exit=0)
    with running_sim("--dump", ADVERSARIAL, "--page-size", "2", "--rate", "1000", "--throttle-storm", "0.4",
                     "--retry-after-format", "fractional", "--seed", "3") as sim:
        run = live_export(sim, tmp_path / "live", "--rate", "200", "--concurrency", "3")
        stats = sim.stats()
    assert run.returncode == 0, run.describe()
    assert objects_of(tmp_path / "live" / "bundle.json") == objects_of(reference.bundle_path)
    summary = load_json(tmp_path / "live" / "s.json")
    assert summary["indicators"] == reference.summary["indicators"]
    assert summary["profiles"] == reference.summary["profiles"]
    assert stats["throttled"] > 5 and stats["early_requests"] == 0, stats


def test_retry_after_in_whole_seconds_and_http_dates_is_honoured(tmp_path):
    for retry_format in ("integer", "http-date"):
        with running_sim("--dump", ADVERSARIAL, "--page-size", "20", "--rate", "3", "--burst", "3",
                         "--retry-after-format", retry_format) as sim:
            run = live_export(sim, tmp_path / retry_format, "--rate", "50", "--concurrency", "4")
            stats = sim.stats()
        assert run.returncode == 0, run.describe()
        assert stats["throttled"] > 0 and stats["early_requests"] == 0, (retry_format, stats)


def test_the_token_is_renewed_after_a_mid_run_revocation_and_the_output_is_unchanged(tmp_path):
    reference = export(SAMPLES, tmp_path / "dir", expect_exit=EXIT_PARTIAL)
    # Every 15th Graph request finds every issued token revoked; tokens also live only 3 s.
    with running_sim("--dump", SAMPLES, "--page-size", "5", "--token-revoke-every", "15",
                     "--token-ttl", "3") as sim:
        run = live_export(sim, tmp_path / "live", "--rate", "40", "--concurrency", "4")
        log = sim.requests()
        stats = sim.stats()
    # The samples' malformed records make both runs partial; the objects are the same.
    assert run.returncode == EXIT_PARTIAL, run.describe()
    assert objects_of(tmp_path / "live" / "bundle.json") == objects_of(reference.bundle_path)
    refused = [e for e in graph_requests(log) if e["status"] == 401]
    revocations = len(graph_requests(log)) // 15
    assert revocations >= 4 and len(refused) >= revocations, (revocations, refused)
    assert stats["unauthorized"] == len(refused), stats
    # Each refusal is followed by a renewal, not by retries with the dead token.
    renewals = [e["t"] for e in log if e["route"] == "token" and e["status"] == 200]
    assert len(renewals) >= 1 + revocations, renewals
    for entry in refused:
        assert any(t > entry["t"] for t in renewals), entry


def test_a_wrong_secret_fails_with_an_authentication_message(tmp_path):
    with running_sim("--dump", ADVERSARIAL) as sim:
        run = live_export(sim, tmp_path / "live", secret="wrong-" + CLIENT_SECRET)
    assert run.returncode in (EXIT_FAILED, EXIT_USAGE), run.describe()
    assert "authentication" in run.stderr.lower(), run.describe()
    assert not (tmp_path / "live" / "bundle.json").exists()


def test_missing_permission_or_licence_says_so(tmp_path):
    with running_sim("--dump", ADVERSARIAL, "--mode", "forbidden") as sim:
        run = live_export(sim, tmp_path / "live")
    assert run.returncode == EXIT_FAILED, run.describe()
    assert "ThreatIntelligence.Read.All" in run.stderr, run.describe()


def test_a_run_that_only_fails_is_stopped_by_the_circuit_breaker(tmp_path):
    # The listing succeeds; every indicator page fails for good. Each profile alone would only be
    # reported as lost: the breaker is what stops the run.
    with running_sim("--dump", ADVERSARIAL, "--fault-after", "1", "--fault-rate", "1", "--faults", "500") as sim:
        started = time.monotonic()
        # Retries per request are generous, so it is the breaker, not one exhausted request, that stops it.
        run = live_export(sim, tmp_path / "live", "--rate", "200", "--max-attempts", "100")
    assert run.returncode == EXIT_FAILED, run.describe()
    assert "consecutive" in run.stderr, run.describe()
    assert time.monotonic() - started < 120
    assert not (tmp_path / "live" / "bundle.json").exists()


def test_indicator_pages_that_cannot_be_fetched_fail_the_run_and_publish_nothing(tmp_path):
    # The listing and the first pages succeed; later pages fail for good. Exporting the rest as
    # a routine partial run would silently shrink every consumer's data.
    with running_sim("--dump", SAMPLES, "--page-size", "5", "--fault-after", "12", "--fault-rate", "1",
                     "--faults", "503") as sim:
        run = live_export(sim, tmp_path / "live", "--rate", "200", "--max-attempts", "2",
                          "--to", "csv:%s" % (tmp_path / "live" / "indicators.csv"))
    assert run.returncode == EXIT_FAILED, run.describe()
    assert "could not all be fetched" in run.stderr, run.describe()
    assert not (tmp_path / "live" / "bundle.json").exists()
    assert not (tmp_path / "live" / "indicators.csv").exists()
    assert load_json(tmp_path / "live" / "s.json")["exit_code"] == EXIT_FAILED


def test_a_listing_that_keeps_failing_fails_the_run(tmp_path):
    with running_sim("--dump", ADVERSARIAL, "--fault-rate", "1", "--faults", "503") as sim:
        run = live_export(sim, tmp_path / "live", "--rate", "200", "--max-attempts", "3")
    assert run.returncode == EXIT_FAILED, run.describe()
    assert "gave up after 3 attempts" in run.stderr, run.describe()


def test_secrets_and_tokens_never_reach_logs_or_outputs(tmp_path):
    with running_sim("--dump", ADVERSARIAL, "--throttle-storm", "0.2", "--seed", "5") as sim:
        run = live_export(sim, tmp_path / "live", "--rate", "200", log_level="trace")
        tokens = sim.issued_tokens()
    assert run.returncode == 0, run.describe()
    assert tokens, "the sim issued no token"
    written = run.stderr + run.stdout + "".join(p.read_text(errors="replace") for p in (tmp_path / "live").iterdir())
    assert CLIENT_SECRET not in written
    for token in tokens:
        assert token not in written


def test_a_capture_replays_to_the_same_objects(tmp_path):
    with running_sim("--dump", SAMPLES, "--page-size", "9", "--fault-rate", "0.05", "--faults", "503,truncate", "--seed", "11") as sim:
        run = live_export(sim, tmp_path / "live", "--to", "dump:%s" % (tmp_path / "capture"),
                          "--enrich", "hosts,reputation", "--rate", "100")
    assert run.returncode == EXIT_PARTIAL, run.describe()
    replay = export(tmp_path / "capture", tmp_path / "replay", "--enrich", "hosts,reputation", expect_exit=EXIT_PARTIAL)
    assert objects_of(tmp_path / "live" / "bundle.json") == canonical_objects(replay.objects)
    summary = load_json(tmp_path / "live" / "s.json")
    assert any(s["sink"].startswith("dump:") and s["status"] == "ok" for s in summary["sinks"]), summary


def test_live_enrichment_equals_dump_enrichment(tmp_path):
    reference = export(SAMPLES, tmp_path / "dir", "--enrich", "hosts,reputation", "--observables", expect_exit=EXIT_PARTIAL)
    with running_sim("--dump", SAMPLES, "--rate", "100") as sim:
        run = live_export(sim, tmp_path / "live", "--enrich", "hosts,reputation", "--observables", "--rate", "100")
    assert run.returncode == EXIT_PARTIAL, run.describe()
    live = objects_of(tmp_path / "live" / "bundle.json")
    assert live == objects_of(reference.bundle_path)
    assert any('"autonomous-system"' in o for o in live)
    assert_stix_ok(tmp_path / "live" / "bundle.json", allow_based_on_sco=True)
