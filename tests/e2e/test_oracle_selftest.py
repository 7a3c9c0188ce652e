"""The oracle must itself be trustworthy: it passes the known-good bundle from the STIX reference
(shared/reference/stix-taxii.md §1.10, copied to tests/oracles/example_bundle.json) and fails each
deliberately broken variant. Runs without the ctiport binary."""
from __future__ import annotations

import copy
import json

import pytest

import check_stix
from e2e_util import REPO, load_json

EXAMPLE = REPO / "tests" / "oracles" / "example_bundle.json"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture()
def good() -> dict:
    return load_json(EXAMPLE)


def first(bundle: dict, type_: str) -> dict:
    return next(o for o in bundle["objects"] if o["type"] == type_)


def checks_failed(bundle: dict, **kw) -> set:
    return {p.check for p in check_stix.check_bundle(bundle, **kw)}


def test_example_bundle_passes():
    assert check_stix.check_paths([EXAMPLE]) == []
    assert check_stix.check_paths([EXAMPLE], allow_based_on_sco=True) == []


def test_cli_exit_codes(tmp_path, good, capsys):
    assert check_stix.main(["-q", str(EXAMPLE)]) == 0
    first(good, "indicator")["pattern"] = "[url:value = 'http://x.example/a\\b']"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(good))
    assert check_stix.main(["-q", str(bad)]) == 1
    assert "indicator--e2e1a340-4415-4ba8-9671-f7343fbf0836" in capsys.readouterr().out
    assert check_stix.main(["-q", str(tmp_path / "nope.json")]) == 2
    # a directory is expanded to its *.json files
    (tmp_path / "good.json").write_text(EXAMPLE.read_text())
    assert check_stix.main(["-q", str(tmp_path)]) == 1


def test_bad_pattern_escape_fails(good):
    # a lone backslash is not a legal escape inside a STIX pattern string literal
    first(good, "indicator")["pattern"] = "[url:value = 'http://evil.example.com/a\\b']"
    assert {"validator", "pattern", "parse"} <= checks_failed(good)


def test_unescaped_quote_fails(good):
    first(good, "indicator")["pattern"] = "[url:value = 'http://evil.example.com/it's']"
    assert {"validator", "pattern"} <= checks_failed(good)


def test_two_digit_fraction_in_created_fails(good):
    o = first(good, "intrusion-set")
    o["created"] = o["modified"] = "2024-05-01T00:00:00.00Z"
    assert {"validator", "timestamp"} <= checks_failed(good)


def test_two_digit_fraction_in_valid_from_fails(good):
    # the validator accepts this one; the project's 3-digit rule does not
    first(good, "indicator")["valid_from"] = "2024-05-01T00:00:00.00Z"
    assert checks_failed(good) == {"timestamp"}


def test_dangling_relationship_ref_fails(good):
    first(good, "relationship")["target_ref"] = "intrusion-set--" + MISSING
    # --enforce-refs in stix2-validator 3.2.0 does report this one
    assert {"validator", "refs"} <= checks_failed(good)


@pytest.mark.parametrize("prop,value", [
    ("created_by_ref", "identity--" + MISSING),
    ("object_marking_refs", ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]),
])
def test_dangling_non_relationship_ref_fails(good, prop, value):
    # the validator's --enforce-refs ignores these; check_stix's own refs check must not
    first(good, "tool")[prop] = value
    assert checks_failed(good) == {"refs"}


def test_predefined_tlp1_marking_may_be_referenced_without_object(good):
    first(good, "tool")["object_marking_refs"] = [
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"]
    assert check_stix.check_bundle(good) == []
    assert checks_failed(good, strict_refs=True) == {"refs"}


def test_wrong_sco_id_fails(good):
    first(good, "ipv4-addr")["id"] = "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c5"
    assert checks_failed(good) == {"sco-id"}


def test_sco_value_not_matching_id_fails(good):
    first(good, "ipv4-addr")["value"] = "198.51.100.4"
    assert checks_failed(good) == {"sco-id"}


def test_based_on_sco_needs_flag(good):
    good["objects"].append({
        "type": "relationship", "spec_version": "2.1",
        "id": "relationship--d2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
        "created": "2024-05-01T00:00:00.000Z", "modified": "2024-05-01T00:00:00.000Z",
        "relationship_type": "based-on",
        "source_ref": "indicator--5a9b1f7e-0d3c-4a8e-9b1a-2c3d4e5f6a7b",
        "target_ref": "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4"})
    assert checks_failed(good) == {"validator"}
    assert check_stix.check_bundle(good, allow_based_on_sco=True) == []


def test_duplicate_id_fails(good):
    good["objects"].append(copy.deepcopy(first(good, "ipv4-addr")))
    assert "structure" in checks_failed(good)


def test_custom_property_fails(good):
    first(good, "tool")["x_custom"] = "1"
    assert {"validator", "parse"} <= checks_failed(good)


def test_validator_format_checks_are_active(good):
    # jsonschema's format checkers come from optional extras; without them these pass silently
    good["objects"].append({"type": "url", "spec_version": "2.1", "value": "http://a b.example/x",
                            "id": check_stix.expected_sco_id({"type": "url",
                                                              "value": "http://a b.example/x"})})
    good["objects"].append({"type": "domain-name", "spec_version": "2.1",
                            "value": "_dmarc.example.com",
                            "id": check_stix.expected_sco_id({"type": "domain-name",
                                                              "value": "_dmarc.example.com"})})
    msgs = [p.message for p in check_stix.check_bundle(good) if p.check == "validator"]
    assert any("is not a 'uri'" in m for m in msgs), msgs
    assert any("is not a 'idn-hostname'" in m for m in msgs), msgs


@pytest.mark.parametrize("obj,want", [
    # worked values from shared/reference/stix-taxii.md §3.3
    ({"type": "ipv4-addr", "value": "198.51.100.3"},
     "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4"),
    ({"type": "domain-name", "value": "evil.example.com"},
     "domain-name--6262c8a9-ac28-50fe-a7df-f5923bb2ee14"),
    ({"type": "domain-name", "value": "m\u00fcnchen.example"},
     "domain-name--ec84ab45-ecbb-5f68-840c-b4b7d70cb21d"),
    ({"type": "email-addr", "value": "phish@example.com"},
     "email-addr--219b18b4-f723-5bf4-8691-f313d67ccf85"),
    ({"type": "ipv6-addr", "value": "2001:db8::1"},
     "ipv6-addr--6469e3a9-b053-5e34-a025-9396ae051d26"),
    ({"type": "file", "hashes": {
        "SHA-256": "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"}},
     "file--02c74237-f6bc-5e2e-bcbe-e9bf3d69ac64"),
    ({"type": "file", "hashes": {
        "MD5": "d41d8cd98f00b204e9800998ecf8427e",
        "SHA-256": "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"}},
     "file--02fff920-f614-527c-81d1-6353633a6d21"),
    ({"type": "x509-certificate", "hashes": {"SHA-1": "0123456789abcdef0123456789abcdef01234567"}},
     "x509-certificate--9383119f-d6ba-5dce-b6a6-ae532a9975e7"),
    ({"type": "x509-certificate",
      "serial_number": "36:f7:d4:32:f4:ab:70:ea:d3:ce:98:6e:ea:99:93:49:32:0a:b7:06"},
     "x509-certificate--bf86f034-2390-54d7-8426-d08433db3fbe"),
])
def test_sco_id_reference_values(obj, want):
    assert check_stix.expected_sco_id(obj) == want
