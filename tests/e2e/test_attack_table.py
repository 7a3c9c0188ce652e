"""mappings/attack-techniques.json against MITRE (tests/fixtures/attack/expected.json, read from MITRE's
data with jq, not with the generator) and against its JSON Schema; mappings/attack/generate.py on
small synthetic releases, for the inputs it must refuse."""
from __future__ import annotations

import copy
import importlib.util
import json

import jsonschema
import pytest

from e2e_util import REPO, SAMPLES_EXPECTED, load_json

TABLE = REPO / "mappings" / "attack-techniques.json"
SCHEMA = REPO / "mappings" / "schemas" / "attack-techniques.schema.json"
FIXTURE = REPO / "tests" / "fixtures" / "attack" / "expected.json"


def load_generator():
    spec = importlib.util.spec_from_file_location("attack_generate", REPO / "mappings" / "attack" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table() -> dict:
    return load_json(TABLE)


@pytest.fixture(scope="module")
def mitre() -> dict:
    return load_json(FIXTURE)


def resolve(techniques: dict, attack_id: str) -> str:
    seen = [attack_id]
    while techniques[seen[-1]].get("revoked"):
        seen.append(techniques[seen[-1]]["revoked_by"])
        assert len(seen) <= len(techniques), "revoked_by cycle: %s" % seen[:10]
    return seen[-1]


def test_table_matches_its_schema(table):
    schema = load_json(SCHEMA)
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(table)]
    assert errors == []


def test_table_is_the_release_the_fixture_was_read_from(table, mitre):
    assert table["release"]["domain"] == mitre["release"]["domain"]
    assert table["release"]["version"] == mitre["release"]["version"]


def test_current_techniques_have_mitres_ids_and_names(table, mitre):
    techniques = table["techniques"]
    for attack_id, fact in mitre["current"].items():
        entry = techniques[attack_id]
        assert (entry["id"], entry["name"]) == (fact["id"], fact["name"]), attack_id
        assert not entry.get("revoked") and not entry.get("deprecated"), attack_id
        assert entry["url"] == "https://attack.mitre.org/techniques/" + attack_id.replace(".", "/")


def test_revoked_techniques_follow_mitres_revoked_by(table, mitre):
    techniques = table["techniques"]
    by_stix_id = {e["id"]: k for k, e in techniques.items()}
    for attack_id, fact in mitre["revoked"].items():
        entry = techniques[attack_id]
        assert entry["id"] == fact["id"] and entry.get("revoked") is True, attack_id
        assert by_stix_id[fact["revoked_by"]["target"]] == entry["revoked_by"], attack_id
        current = resolve(techniques, attack_id)
        assert current == fact["resolves_to"], attack_id
        assert techniques[current]["id"] == mitre["current"][current]["id"]


def test_deprecated_and_absent_ids(table, mitre):
    techniques = table["techniques"]
    for attack_id, fact in mitre["deprecated"].items():
        entry = techniques[attack_id]
        assert entry["id"] == fact["id"] and entry.get("deprecated") is True and "revoked_by" not in entry
    for attack_id in mitre["not_in_release"]:
        assert attack_id not in techniques


def test_fixture_covers_every_technique_id_in_the_samples(mitre):
    articles = load_json(SAMPLES_EXPECTED)["articles"]
    mentioned = {t for ids in articles["profile_techniques"].values() for t in ids}
    mentioned |= {t for a in articles["per_article"].values() for t in a["techniques"]}
    covered = set(mitre["current"]) | set(mitre["revoked"]) | set(mitre["deprecated"]) | set(mitre["not_in_release"])
    assert mentioned - covered == set()
    # the samples exercise each case a resolver meets
    assert mentioned & set(mitre["revoked"]) and mentioned & set(mitre["deprecated"])
    assert mentioned & set(mitre["not_in_release"])


def test_every_revocation_chain_ends(table):
    techniques = table["techniques"]
    for attack_id in techniques:
        assert not techniques[resolve(techniques, attack_id)].get("revoked")


def test_techniques_reference_the_identity_and_marking_in_the_table(table):
    assert table["identity"]["id"] == "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5"
    assert table["marking_definition"]["id"] == "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168"
    assert table["marking_definition"]["created_by_ref"] == table["identity"]["id"]


# ---- the generator, on synthetic releases ------------------------------------------------------

IDENTITY = {"type": "identity", "id": "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5", "created": "2017-06-01T00:00:00.000Z",
            "modified": "2017-06-01T00:00:00.000Z", "name": "The MITRE Corporation", "identity_class": "organization",
            "x_mitre_attack_spec_version": "3.2.0"}
MARKING = {"type": "marking-definition", "id": "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168",
           "created": "2017-06-01T00:00:00.000Z", "created_by_ref": IDENTITY["id"], "definition_type": "statement",
           "definition": {"statement": "Copyright The MITRE Corporation."}}


def technique(n: int, attack_id: str, **extra) -> dict:
    obj = {"type": "attack-pattern", "id": "attack-pattern--00000000-0000-4000-8000-%012d" % n,
           "created": "2020-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": "Technique %d" % n,
           "created_by_ref": IDENTITY["id"], "object_marking_refs": [MARKING["id"]], "x_mitre_domains": ["enterprise-attack"],
           "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "execution"}],
           "external_references": [{"source_name": "mitre-attack", "external_id": attack_id,
                                    "url": "https://attack.mitre.org/techniques/" + attack_id.replace(".", "/")}]}
    obj.update(extra)
    return obj


def revoked_by(n: int, source: dict, target: dict) -> dict:
    return {"type": "relationship", "id": "relationship--00000000-0000-4000-8000-%012d" % n,
            "relationship_type": "revoked-by", "source_ref": source["id"], "target_ref": target["id"]}


def release() -> list:
    old, mid, new = technique(1, "T1001", revoked=True), technique(2, "T1002.001", revoked=True), technique(3, "T1003")
    collection = {"type": "x-mitre-collection", "id": "x-mitre-collection--1", "x_mitre_version": "9.9"}
    return [collection, IDENTITY, MARKING, old, mid, new, technique(4, "T1004", x_mitre_deprecated=True),
            revoked_by(1, old, mid), revoked_by(2, mid, new)]


def bundle_bytes(objects: list) -> bytes:
    return json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}).encode()


def generate(tmp_path, objects, *args) -> tuple[int, dict | None]:
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(objects))
    out = tmp_path / "table.json"
    code = load_generator().main(["--bundle", str(path), "--out", str(out), *args])
    return code, (load_json(out) if code == 0 else None)


def test_generator_writes_a_table_that_matches_the_schema(tmp_path):
    code, table = generate(tmp_path, release())
    assert code == 0
    assert list(jsonschema.Draft202012Validator(load_json(SCHEMA)).iter_errors(table)) == []
    t = table["techniques"]
    assert (t["T1001"]["revoked_by"], t["T1002.001"]["revoked_by"]) == ("T1002.001", "T1003")
    assert t["T1004"]["deprecated"] is True and "revoked" not in t["T1003"]
    assert table["release"]["version"] == "9.9"
    assert "x_mitre_attack_spec_version" not in table["identity"] and table["identity"]["spec_version"] == "2.1"


def test_generator_reads_mitres_object_files_like_the_bundle(tmp_path):
    _, from_bundle = generate(tmp_path, release())
    files = tmp_path / "cti"
    for obj in release()[1:]:  # the STIX 2.0 release has no collection object
        folder = files / obj["type"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (obj["id"] + ".json")).write_bytes(bundle_bytes([obj]))
    out = tmp_path / "from-files.json"
    gen = load_generator()
    assert gen.main(["--object-files", str(files), "--out", str(out)]) == 2  # no version given
    assert gen.main(["--object-files", str(files), "--attack-version", "9.9", "--out", str(out)]) == 0
    assert gen.comparable(load_json(out)) == gen.comparable(from_bundle)


def test_generator_checks_pins(tmp_path):
    gen = load_generator()
    data = bundle_bytes(release())
    (tmp_path / "bundle.json").write_bytes(data)
    assert gen.git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object
    assert generate(tmp_path, release(), "--git-blob", gen.git_blob_sha1(data))[0] == 0
    assert generate(tmp_path, release(), "--git-blob", "0" * 40)[0] == 2
    assert generate(tmp_path, release(), "--sha256", "0" * 64)[0] == 2
    assert generate(tmp_path, release(), "--attack-version", "9.8")[0] == 2


def mutated(change) -> list:
    objects = copy.deepcopy(release())
    change(objects)
    return objects


@pytest.mark.parametrize("change", [
    pytest.param(lambda o: o.pop(), id="revoked-without-revoked-by"),
    pytest.param(lambda o: o.append(revoked_by(3, o[5], o[3])), id="revoked-by-on-a-current-technique"),
    pytest.param(lambda o: o[5].update(revoked=True) or o.append(revoked_by(3, o[5], o[3])), id="revocation-cycle"),
    pytest.param(lambda o: o.append(technique(5, "T1003")), id="attack-id-twice"),
    pytest.param(lambda o: o[6]["external_references"].clear(), id="no-mitre-reference"),
    pytest.param(lambda o: o[6].update(created_by_ref="identity--00000000-0000-4000-8000-000000000000"), id="other-creator"),
    pytest.param(lambda o: o.append(dict(o[3], name="changed")), id="same-id-different-content"),
    pytest.param(lambda o: o.remove(o[2]), id="marking-missing"),
])
def test_generator_refuses_inconsistent_releases(tmp_path, change):
    assert generate(tmp_path, mutated(change))[0] == 2


def test_generator_output_is_reproducible(tmp_path):
    gen = load_generator()
    table = gen.build_table(release(), "9.9", {"format": "stix-2.1-bundle", "location": "x", "sha256": "0" * 64})
    shuffled = list(reversed(release()))
    again = gen.build_table(shuffled, "9.9", {"format": "stix-2.1-bundle", "location": "x", "sha256": "0" * 64})
    assert gen.render(table) == gen.render(again)
    assert json.loads(gen.render(table)) == table
