"""Run the pinned OASIS validator (strict, -d 103, --enforce-refs) and stix2.parse on
small candidate objects and print exactly what they say.  Source of FINDINGS.md.

    .venv/bin/python tests/oracles/research_candidates.py
"""
import copy

import stix2
from stix2validator import ValidationOptions, validate_instance

T = "2024-05-01T00:00:00.000Z"
PRODUCER = "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff"
IDS = {
    "threat-actor": "threat-actor--1b9e0d2c-3f4a-4b5c-8d6e-7f8091a2b3c4",
    "intrusion-set": "intrusion-set--4e78f46f-a023-4e5f-bc24-71b3ca22ec29",
    "tool": "tool--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
    "sector": "identity--c9c4b9f5-3d4b-4c62-a5c8-6b6d6a9e2f11",
    "location": "location--a6e9345f-5a15-4c29-8bb3-7dcc5d168d64",
    "indicator": "indicator--e2e1a340-4415-4ba8-9671-f7343fbf0836",
    "domain": "domain-name--6262c8a9-ac28-50fe-a7df-f5923bb2ee14",
}


def common(type_, id_):
    return {"type": type_, "spec_version": "2.1", "id": id_, "created_by_ref": PRODUCER,
            "created": T, "modified": T}


PRODUCER_OBJ = {"type": "identity", "spec_version": "2.1", "id": PRODUCER, "created": T,
                "modified": T, "name": "ctiport", "identity_class": "organization"}
BASE = {
    "threat-actor": dict(common("threat-actor", IDS["threat-actor"]), name="EXAMPLE ACTOR",
                         threat_actor_types=["nation-state"]),
    "intrusion-set": dict(common("intrusion-set", IDS["intrusion-set"]), name="EXAMPLE SET"),
    "tool": dict(common("tool", IDS["tool"]), name="Cobalt Strike", tool_types=["remote-access"]),
    "sector": dict(common("identity", IDS["sector"]), name="Financial Services",
                   identity_class="class", sectors=["financial-services"]),
    "location": dict(common("location", IDS["location"]), name="Germany", country="DE"),
    "indicator": dict(common("indicator", IDS["indicator"]), name="C2 domain",
                      description="Domain used for C2.", indicator_types=["malicious-activity"],
                      pattern="[domain-name:value = 'evil.example.com']", pattern_type="stix",
                      pattern_version="2.1", valid_from=T),
    "domain": {"type": "domain-name", "spec_version": "2.1", "id": IDS["domain"],
               "value": "evil.example.com"},
}


def rel(n, rtype, src, tgt):
    return dict(common("relationship", "relationship--%08d-0000-4000-8000-000000000000" % n),
                relationship_type=rtype, source_ref=IDS[src], target_ref=IDS[tgt])


TLP1 = [
    ("white", "613f2e26-407d-48c7-9eca-b8e91df99dc9"),
    ("green", "34098fce-860f-48ae-8e50-ebd3cc5e41da"),
    ("amber", "f88d31f6-486f-44da-b317-01333bde0b82"),
    ("red", "5e57c739-391a-4eb3-b6be-7d15ca92d5ed"),
]
TLP2 = [
    ("clear", "94868c89-83c2-464b-929b-a1a8aa3c8487"),
    ("green", "bab4a63c-aed9-4cf5-a766-dfca5abac2bb"),
    ("amber", "55d920b0-5e8b-4f79-9ee9-91f868d9b421"),
    ("amber+strict", "939a9414-2ddd-4d32-a0cd-375ea402b003"),
    ("red", "e828b379-4e03-4974-9ac4-e53a884c97c1"),
]
TLP2_EXT = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
OCTI_AS = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"
OCTI_EXT = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"


def tlp1(color, uid):
    return {"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--" + uid,
            "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp",
            "name": "TLP:" + color.upper(), "definition": {"tlp": color}}


def tlp2(level, uid):
    return {"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--" + uid,
            "created": "2022-10-01T00:00:00.000Z", "name": "TLP:" + level.upper(),
            "extensions": {TLP2_EXT: {"extension_type": "property-extension", "tlp_2_0": level}}}


def marked(marking_id):
    o = copy.deepcopy(BASE["intrusion-set"])
    o["object_marking_refs"] = [marking_id]
    return o


OCTI_CREATED = "2024-11-18T08:57:58.528Z"   # OpenCTI's is the platform install time
CASES = [
    ("threat-actor without threat_actor_types",
     [{k: v for k, v in BASE["threat-actor"].items() if k != "threat_actor_types"}]),
    ("tool without tool_types", [{k: v for k, v in BASE["tool"].items() if k != "tool_types"}]),
    ("intrusion-set (name only)", [BASE["intrusion-set"]]),
    ("intrusion-set (aliases, first/last_seen, goals, motivation)",
     [dict(BASE["intrusion-set"], aliases=["Alias One"], first_seen=T, last_seen=T,
           goals=["espionage"], resource_level="government", primary_motivation="organizational-gain")]),
    ("identity class, no sectors",
     [{k: v for k, v in BASE["sector"].items() if k != "sectors"}]),
    ("identity class with sectors", [BASE["sector"]]),
    ("location with only country", [dict(common("location", IDS["location"]), country="DE")]),
    ("location with only name", [dict(common("location", IDS["location"]), name="Germany")]),
    ("location with name + country", [BASE["location"]]),
    ("location country lower-case 'de'", [dict(common("location", IDS["location"]), country="de")]),
    ("location country 'XX'", [dict(common("location", IDS["location"]), country="XX")]),
    ("note", [BASE["intrusion-set"], dict(common("note", "note--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0062"),
                                          abstract="Summary", content="Line 1\n\n**bold**",
                                          authors=["ctiport"], object_refs=[IDS["intrusion-set"]])]),
    ("note without abstract/authors",
     [BASE["intrusion-set"], dict(common("note", "note--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0062"),
                                  content="text", object_refs=[IDS["intrusion-set"]])]),
    ("rel located-at threat-actor -> location",
     [BASE["threat-actor"], BASE["location"], rel(1, "located-at", "threat-actor", "location")]),
    ("rel originates-from intrusion-set -> location",
     [BASE["intrusion-set"], BASE["location"], rel(2, "originates-from", "intrusion-set", "location")]),
    ("rel located-at intrusion-set -> location",
     [BASE["intrusion-set"], BASE["location"], rel(12, "located-at", "intrusion-set", "location")]),
    ("rel targets tool -> identity",
     [BASE["tool"], BASE["sector"], rel(3, "targets", "tool", "sector")]),
    ("rel targets threat-actor -> identity",
     [BASE["threat-actor"], BASE["sector"], rel(13, "targets", "threat-actor", "sector")]),
    ("rel targets intrusion-set -> identity",
     [BASE["intrusion-set"], BASE["sector"], rel(14, "targets", "intrusion-set", "sector")]),
    ("rel targets threat-actor -> location",
     [BASE["threat-actor"], BASE["location"], rel(15, "targets", "threat-actor", "location")]),
    ("rel attributed-to intrusion-set -> threat-actor",
     [BASE["intrusion-set"], BASE["threat-actor"], rel(4, "attributed-to", "intrusion-set", "threat-actor")]),
    ("rel indicates indicator -> tool",
     [BASE["indicator"], BASE["tool"], rel(5, "indicates", "indicator", "tool")]),
    ("rel indicates indicator -> threat-actor",
     [BASE["indicator"], BASE["threat-actor"], rel(16, "indicates", "indicator", "threat-actor")]),
    ("rel indicates indicator -> intrusion-set",
     [BASE["indicator"], BASE["intrusion-set"], rel(17, "indicates", "indicator", "intrusion-set")]),
    ("rel based-on indicator -> domain-name",
     [BASE["indicator"], BASE["domain"], rel(6, "based-on", "indicator", "domain")]),
    ("rel uses threat-actor -> tool",
     [BASE["threat-actor"], BASE["tool"], rel(18, "uses", "threat-actor", "tool")]),
    ("rel uses intrusion-set -> tool",
     [BASE["intrusion-set"], BASE["tool"], rel(19, "uses", "intrusion-set", "tool")]),
    ("rel dangling target (enforce-refs)",
     [BASE["indicator"], rel(7, "indicates", "indicator", "tool")]),
    ("dangling created_by_ref / object_marking_refs (not a relationship)",
     [dict(BASE["tool"], created_by_ref="identity--00000000-0000-4000-8000-000000000000",
           object_marking_refs=["marking-definition--00000000-0000-4000-8000-000000000000"])]),
]
for c, u in TLP1:
    CASES.append(("TLP 1.0 %s shipped (exact spec copy)" % c, [tlp1(c, u), marked("marking-definition--" + u)]))
CASES.append(("TLP 1.0 amber referenced, object NOT shipped",
              [marked("marking-definition--f88d31f6-486f-44da-b317-01333bde0b82")]))
for c, u in TLP2:
    CASES.append(("TLP 2.0 %s shipped" % c, [tlp2(c, u), marked("marking-definition--" + u)]))
CASES += [
    ("OpenCTI AMBER+STRICT, connector/pycti form (statement 'custom' + x_opencti_*)",
     [{"type": "marking-definition", "spec_version": "2.1", "id": OCTI_AS, "created": OCTI_CREATED,
       "definition_type": "statement", "definition": {"statement": "custom"},
       "x_opencti_definition_type": "TLP", "x_opencti_definition": "TLP:AMBER+STRICT"}, marked(OCTI_AS)]),
    ("OpenCTI AMBER+STRICT, connector form + name",
     [{"type": "marking-definition", "spec_version": "2.1", "id": OCTI_AS, "created": OCTI_CREATED,
       "name": "TLP:AMBER+STRICT",
       "definition_type": "statement", "definition": {"statement": "custom"},
       "x_opencti_definition_type": "TLP", "x_opencti_definition": "TLP:AMBER+STRICT"}, marked(OCTI_AS)]),
    ("OpenCTI AMBER+STRICT, statement form without x_opencti_* (name + statement)",
     [{"type": "marking-definition", "spec_version": "2.1", "id": OCTI_AS, "created": OCTI_CREATED,
       "name": "TLP:AMBER+STRICT",
       "definition_type": "statement", "definition": {"statement": "TLP:AMBER+STRICT"}}, marked(OCTI_AS)]),
    ("OpenCTI AMBER+STRICT, platform export (tlp / {tlp: amber+strict}, as OpenCTI's converter tests expect)",
     [{"type": "marking-definition", "spec_version": "2.1", "id": OCTI_AS, "created": OCTI_CREATED,
       "name": "TLP:AMBER+STRICT", "definition_type": "tlp",
       "definition": {"tlp": "amber+strict"}}, marked(OCTI_AS)]),
    ("OpenCTI AMBER+STRICT, newer platform export (definition_type 'TLP', no definition, OCTI extension)",
     [{"type": "marking-definition", "spec_version": "2.1", "id": OCTI_AS, "created": OCTI_CREATED,
       "name": "TLP:AMBER+STRICT", "definition_type": "TLP",
       "extensions": {OCTI_EXT: {"extension_type": "property-extension", "order": 3,
                                 "color": "#d84315"}}}, marked(OCTI_AS)]),
    ("OpenCTI AMBER+STRICT id in TLP 2.0 form (name + OASIS TLP2 extension, no definition_type)",
     [{"type": "marking-definition", "spec_version": "2.1", "id": OCTI_AS,
       "created": "2022-10-01T00:00:00.000Z", "name": "TLP:AMBER+STRICT",
       "extensions": {TLP2_EXT: {"extension_type": "property-extension", "tlp_2_0": "amber+strict"}}},
      marked(OCTI_AS)]),
    ("OpenCTI AMBER+STRICT, name only (no definition, no extension)",
     [{"type": "marking-definition", "spec_version": "2.1", "id": OCTI_AS,
       "created": "2022-10-01T00:00:00.000Z", "name": "TLP:AMBER+STRICT"}, marked(OCTI_AS)]),
    ("OpenCTI AMBER+STRICT referenced, object NOT shipped", [marked(OCTI_AS)]),
    ("indicator with labels", [dict(BASE["indicator"], labels=["c2", "apt-example"])]),
    ("indicator with labels containing spaces/upper-case", [dict(BASE["indicator"], labels=["Command and Control"])]),
    ("confidence 85 on intrusion-set", [dict(BASE["intrusion-set"], confidence=85)]),
    ("confidence 101", [dict(BASE["intrusion-set"], confidence=101)]),
    ("external_reference source_name+external_id only",
     [dict(BASE["intrusion-set"], external_references=[{"source_name": "microsoft-defender-ti",
                                                       "external_id": "abc123"}])]),
    ("external_reference source_name+url (no hashes)",
     [dict(BASE["intrusion-set"], external_references=[{"source_name": "microsoft-defender-ti",
                                                       "url": "https://example.com/profile/abc"}])]),
    ("external_reference source_name only",
     [dict(BASE["intrusion-set"], external_references=[{"source_name": "microsoft-defender-ti"}])]),
    ("description with newlines + markdown",
     [dict(BASE["intrusion-set"], description="# Title\n\n* item `code`\n* [link](https://example.com)\n\n| a | b |\n|---|---|\n")]),
    ("timestamp with 2-digit fraction (created)",
     [dict(BASE["intrusion-set"], created="2024-05-01T00:00:00.00Z", modified="2024-05-01T00:00:00.00Z")]),
    ("valid_from without fraction, valid_until with 3",
     [dict(BASE["indicator"], valid_from="2024-05-01T00:00:00Z", valid_until="2024-06-01T00:00:00.000Z")]),
    ("valid_until == valid_from",
     [dict(BASE["indicator"], valid_until=T)]),
    ("email-addr SCO with an apostrophe",
     [{"type": "email-addr", "spec_version": "2.1", "value": "o'reilly@example.org",
       "id": "email-addr--" + "00000000-0000-5000-8000-000000000000"}]),
    ("url SCO with raw backslashes",
     [{"type": "url", "spec_version": "2.1", "value": "https://owa-mail.example.com/owa\\auth\\logon.aspx",
       "id": "url--" + "00000000-0000-5000-8000-000000000000"}]),
    ("domain-name SCO, IDN in Unicode",
     [{"type": "domain-name", "spec_version": "2.1", "value": "\u4f8b\u3048.\u30c6\u30b9\u30c8",
       "id": "domain-name--" + "00000000-0000-5000-8000-000000000000"}]),
    ("indicator without name/description",
     [{k: v for k, v in BASE["indicator"].items() if k not in ("name", "description")}]),
]


def validate(objs):
    bundle = {"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
              "objects": [PRODUCER_OBJ] + copy.deepcopy(objs)}
    opts = ValidationOptions(version="2.1", strict=True, disabled="103", enforce_refs=True)
    r = validate_instance(bundle, opts)
    msgs = [str(e) for e in r.errors]
    try:
        stix2.parse(bundle, allow_custom=False)
        parse = "ok"
    except Exception as e:  # noqa: BLE001 - report whatever the library says
        parse = "%s: %s" % (type(e).__name__, e)
    return r.is_valid, msgs, parse


if __name__ == "__main__":
    for title, objs in CASES:
        ok, msgs, parse = validate(objs)
        print("### %s\nvalidator: %s" % (title, "valid" if ok else "INVALID"))
        for m in msgs:
            print("  - " + m)
        print("stix2.parse: " + parse + "\n")
