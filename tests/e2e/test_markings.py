"""--tlp x --marking-set matrix (on the small adversarial fixture, to stay fast)."""
from __future__ import annotations

import pytest

from e2e_util import (ADVERSARIAL, EXIT_OK, EXIT_USAGE, PROFILE_TYPES, assert_stix_ok, export,
                      run_ctiport)

TLP2_EXT = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_IDS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP1_IDS = {  # STIX 2.1 predefined; TLP 1.0 WHITE stands for CLEAR
    "clear": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "green": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "amber": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "red": "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
TLP1_NAMES = {"clear": "white", "green": "green", "amber": "amber", "red": "red"}
OPENCTI_IDS = dict(TLP1_IDS, **{
    "amber+strict": "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"})
MARKING_SETS = {"tlp2": TLP2_IDS, "tlp1": TLP1_IDS, "opencti": OPENCTI_IDS}
ALL_TLP_IDS = set(TLP2_IDS.values()) | set(OPENCTI_IDS.values())
LEVELS = ["clear", "green", "amber", "amber+strict", "red"]


def tlp2_object(level):
    return {"type": "marking-definition", "spec_version": "2.1", "id": TLP2_IDS[level],
            "created": "2022-10-01T00:00:00.000Z", "name": "TLP:" + level.upper(),
            "extensions": {TLP2_EXT: {"extension_type": "property-extension", "tlp_2_0": level}}}


def tlp1_object(level):
    color = TLP1_NAMES[level]
    return {"type": "marking-definition", "spec_version": "2.1", "id": TLP1_IDS[level],
            "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp",
            "name": "TLP:" + color.upper(), "definition": {"tlp": color}}


def assert_marked(objects, want):
    """Every indicator, relationship and profile object carries `want` and no other TLP."""
    checked = 0
    for o in objects:
        if o["type"] in ("indicator", "relationship") + PROFILE_TYPES:
            refs = o.get("object_marking_refs", [])
            assert want in refs, "%s lacks marking %s: %s" % (o["id"], want, refs)
            others = (set(refs) & ALL_TLP_IDS) - {want}
            assert not others, "%s carries other TLP markings %s" % (o["id"], others)
            checked += 1
    assert checked, "no indicator/relationship/profile objects to check"


def assert_marking_object(objects, marking_set, level, want):
    shipped = [o for o in objects if o["id"] == want]
    assert len(shipped) <= 1
    if marking_set == "tlp2":
        # TLP 2.0 definitions are not predefined in STIX: they must travel with the data
        assert shipped, "TLP 2.0 marking %s is referenced but not in the bundle" % want
        assert shipped[0] == tlp2_object(level)
    elif shipped and want in TLP1_IDS.values():
        assert shipped[0] == tlp1_object(level), "TLP 1.0 objects must be exact spec copies"


def test_default_marking_is_tlp2_amber(samples_export):
    assert_marked(samples_export.objects, TLP2_IDS["amber"])
    assert_marking_object(samples_export.objects, "tlp2", "amber", TLP2_IDS["amber"])


@pytest.mark.parametrize("marking_set", sorted(MARKING_SETS))
@pytest.mark.parametrize("level", LEVELS)
def test_tlp_marking_matrix(tmp_path, marking_set, level):
    args = ("--tlp", level, "--marking-set", marking_set)
    want = MARKING_SETS[marking_set].get(level)
    if want is None:  # tlp1 has no AMBER+STRICT
        bundle = tmp_path / "bundle.json"
        r = run_ctiport("export", "--from", "dir:%s" % ADVERSARIAL, "--to", "stix:%s" % bundle,
                        *args)
        assert r.returncode == EXIT_USAGE, r.describe()
        assert r.stderr.strip(), "usage error without a message"
        assert not bundle.exists(), "a bundle was written despite the usage error"
        return
    e = export(ADVERSARIAL, tmp_path, *args, expect_exit=EXIT_OK)
    assert_stix_ok(e.bundle_path)
    assert_marked(e.objects, want)
    assert_marking_object(e.objects, marking_set, level, want)
