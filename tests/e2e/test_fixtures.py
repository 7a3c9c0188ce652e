"""tests/fixtures/adversarial (valid but awkward records) and tests/fixtures/malformed."""
from __future__ import annotations

import pytest

from e2e_util import (ADVERSARIAL, EXIT_OK, EXIT_PARTIAL, MALFORMED, assert_rejections_reported,
                      assert_stix_ok, by_type, expected_rejections, export, relationships)


@pytest.mark.parametrize("observables", [False, True], ids=["plain", "observables"])
def test_adversarial_exports_cleanly(tmp_path, adversarial_expected, observables):
    extra = ("--observables",) if observables else ()
    e = export(ADVERSARIAL, tmp_path, *extra, expect_exit=EXIT_OK)
    assert_stix_ok(e.bundle_path, allow_based_on_sco=observables)
    s = e.summary
    assert s["exit_code"] == EXIT_OK
    assert s["rejected"] == 0 and s["rejected_records"] == [], s["rejected_records"]
    assert s["profiles"] == adversarial_expected["profiles"]
    assert s["skipped"] == adversarial_expected["skipped"]
    assert s["sinks"][0]["status"] == "ok"
    assert s["sinks"][0]["objects"] == len(e.objects)
    assert by_type(e.objects, "indicator")


def test_malformed_is_partial_and_reports_every_rejection(tmp_path, malformed_expected):
    e = export(MALFORMED, tmp_path, expect_exit=EXIT_PARTIAL)
    assert_stix_ok(e.bundle_path)
    s = e.summary
    assert s["exit_code"] == EXIT_PARTIAL
    assert s["profiles"] == malformed_expected["profiles"]
    assert s["skipped"] == malformed_expected.get("skipped", 0)
    assert_rejections_reported(e.run, s, expected_rejections(malformed_expected))
    # everything that was not malformed was delivered
    good = malformed_expected["good_indicators"]
    assert len(by_type(e.objects, "indicator")) == good
    indicates = relationships(e.objects, "indicates")
    assert len(indicates) == good
    assert {r["source_ref"] for r in indicates} == {o["id"] for o in by_type(e.objects, "indicator")}
    assert s["sinks"][0]["status"] == "ok"
    assert s["sinks"][0]["objects"] == len(e.objects)
