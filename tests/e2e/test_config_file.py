"""`ctiport export --config <file.toml>` (docs/configuration.md): the sample config gives the same
outputs as the equivalent options, options on the command line win over the file, sinks keep
their own options, secrets come from `${VAR}` references, and a mistake is exit 2 naming the key."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from e2e_util import (EXIT_PARTIAL, EXIT_USAGE, REPO, by_type, canonical_objects, load_json,
                      run_ctiport)
from medallion_server import PASSWORD, USER, read_all, start_medallion

SAMPLE_CONFIG = REPO / "samples" / "ctiport.toml"
SECRET = "not-a-real-Secret-0123"


def config_into(out: Path, text: str | None = None) -> str:
    """The sample config with its outputs redirected from out/ to `out`."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8") if text is None else text
    assert '"out/' in text and ':out/' in text
    return text.replace('"out/', '"%s/' % out.as_posix()).replace(':out/', ':%s/' % out.as_posix())


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tree(directory: Path) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def marking_names(objects) -> set:
    return {o.get("name") for o in by_type(objects, "marking-definition")}


def test_sample_config_equals_the_same_options_on_the_command_line(tmp_path):
    by_file, by_flags = tmp_path / "file", tmp_path / "flags"
    config = write_config(tmp_path / "ctiport.toml", config_into(by_file))
    run = run_ctiport("export", "--config", config)
    assert run.returncode == EXIT_PARTIAL, run.describe()

    run = run_ctiport(
        "export", "--from", "dir:samples/mdti", "--to", "stix:%s" % (by_flags / "bundle.json"),
        "--to", "misp-feed:%s/" % (by_flags / "misp-feed"), "--to", "csv:%s" % (by_flags / "indicators.csv"),
        "--summary", by_flags / "summary.json", "--actor-as", "threat-actor", "--tlp", "amber",
        "--marking-set", "tlp2", "--producer-name", "Microsoft Defender Threat Intelligence",
        "--misp-distribution", "organisation", "--misp-max-attributes", "10000",
        "--csv-columns", "value,type,profile_id,profile_title,kind,source,first_seen,last_seen,"
        "confidence,tlp,stix_id", "--log-format", "text", "--log-level", "info")
    assert run.returncode == EXIT_PARTIAL, run.describe()

    file_bundle, flags_bundle = load_json(by_file / "bundle.json"), load_json(by_flags / "bundle.json")
    assert canonical_objects(file_bundle["objects"]) == canonical_objects(flags_bundle["objects"])
    assert (by_file / "indicators.csv").read_bytes() == (by_flags / "indicators.csv").read_bytes()
    feed = tree(by_file / "misp-feed")
    assert feed and feed == tree(by_flags / "misp-feed")

    file_summary, flags_summary = load_json(by_file / "summary.json"), load_json(by_flags / "summary.json")
    for key in ("profiles", "indicators", "rejected", "skipped", "filtered", "objects", "exit_code",
                "rejected_records", "skipped_records"):
        assert file_summary[key] == flags_summary[key], key
    sinks = lambda summary, out: [(s["sink"].replace(out.as_posix(), "OUT"), s["objects"], s["status"])
                                  for s in summary["sinks"]]
    assert sinks(file_summary, by_file) == sinks(flags_summary, by_flags)


def test_command_line_options_win_over_the_file(tmp_path):
    out = tmp_path / "out"
    config = write_config(tmp_path / "ctiport.toml", config_into(out))
    run = run_ctiport("export", "--config", config, "--tlp", "red", "--csv-columns", "value,tlp",
                      "--log-level", "warn")
    assert run.returncode == EXIT_PARTIAL, run.describe()
    objects = load_json(out / "bundle.json")["objects"]
    assert marking_names(objects) == {"TLP:RED"}, marking_names(objects)
    with open(out / "indicators.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["value", "tlp"] and {r[1] for r in rows[1:]} == {"red"}
    # --log-level warn beat the file's `level = "info"`: no INFO line.
    assert not [line for line in run.stderr_lines if " INFO " in line], run.describe()

    # --to on the command line replaces the file's sinks; the rest of the file still applies.
    other = tmp_path / "other.ndjson"
    run = run_ctiport("export", "--config", config, "--to", "ndjson:%s" % other)
    assert run.returncode == EXIT_PARTIAL, run.describe()
    assert other.is_file()
    assert [s["sink"] for s in load_json(out / "summary.json")["sinks"]] == ["ndjson:%s" % other]


def test_each_sink_keeps_its_own_options(tmp_path):
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.toml", """
[source]
from = "dir:samples/mdti"
[mapping]
tlp = "green"
[[sinks]]
to = "csv:{out}/a.csv"
csv_columns = ["value", "type"]
[[sinks]]
to = "csv:{out}/b.csv"
csv_columns = ["stix_id", "tlp"]
[[sinks]]
to = "stix:{out}/small/"
max_bundle_objects = 100
[[sinks]]
to = "stix:{out}/large/"
""".format(out=out.as_posix()))
    run = run_ctiport("export", "--config", config)
    assert run.returncode == EXIT_PARTIAL, run.describe()
    with open(out / "a.csv", newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == ["value", "type"]
    with open(out / "b.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["stix_id", "tlp"] and {r[1] for r in rows[1:]} == {"green"}
    small, large = sorted((out / "small").glob("bundle-*.json")), sorted((out / "large").glob("bundle-*.json"))
    assert len(large) == 1 and len(small) > 1
    assert all(len(load_json(p)["objects"]) <= 100 for p in small)


def test_secrets_come_from_references_to_the_environment(tmp_path):
    server = start_medallion(tmp_path / "medallion", max_content_length=50000)
    try:
        config = write_config(tmp_path / "c.toml", """
[source]
from = "dir:samples/mdti"
[[sinks]]
to = "taxii:{url}"
taxii_username = "${{CFG_TAXII_USER}}"
taxii_password = "${{CFG_TAXII_PW}}"
""".format(url=server.collection_url()))
        env = {"CFG_TAXII_USER": USER, "CFG_TAXII_PW": PASSWORD, "TAXII_USERNAME": "", "TAXII_PASSWORD": ""}
        run = run_ctiport("export", "--config", config, env_extra=env)
        assert run.returncode == EXIT_PARTIAL, run.describe()
        assert read_all(server), "nothing was pushed"
        assert PASSWORD not in run.stderr + run.stdout
    finally:
        server.stop()

    # A variable that is not set: exit 2, naming the key and the variable.
    run = run_ctiport("export", "--config", config, env_extra={"CFG_TAXII_USER": USER})
    assert run.returncode == EXIT_USAGE, run.describe()
    assert "sinks[0].taxii_password: the environment variable CFG_TAXII_PW is not set" in run.stderr, run.describe()


@pytest.mark.parametrize("edit, expected", [
    # A misspelt key in the third sink.
    (lambda t: t.replace('csv_columns = [', 'csv_colums = ['), "sinks[2].csv_colums: unknown key"),
    (lambda t: t.replace('tlp = "amber"', 'tlp = "purple"'), 'mapping.tlp: "purple" is not one of'),
    (lambda t: t.replace('misp_max_attributes = 10000', 'misp_max_attributes = 0'),
     "sinks[1].misp_max_attributes: 0 is less than the minimum of 1"),
    (lambda t: t.replace('[[sinks]]\nto = "stix:', '[[sinks]]\nmax_bundle_objects = 5\nto = "stix:', 1),
     "sinks[0].max_bundle_objects: applies to stix:<dir>/ sinks only"),
    (lambda t: t + '\n[source.graph]\nclient_secret = "%s"\n' % SECRET,
     "source.graph.client_secret: a secret is never written in the file"),
])
def test_a_mistake_in_the_file_is_a_usage_error_naming_the_key(tmp_path, edit, expected):
    out = tmp_path / "out"
    config = write_config(tmp_path / "ctiport.toml", edit(config_into(out)))
    run = run_ctiport("export", "--config", config)
    assert run.returncode == EXIT_USAGE, run.describe()
    assert "%s: %s" % (config, expected) in run.stderr, run.describe()
    assert SECRET not in run.stderr
    assert not out.exists(), "nothing is written when the configuration is wrong"


def test_the_state_key_runs_the_same_incremental_job_as_the_option(tmp_path):
    """`state = "…"` in the file and `--state` on the command line: the same versions, and the
    same nothing-new second run."""
    by_file, by_flags = tmp_path / "file", tmp_path / "flags"
    text = config_into(by_file).replace('# state = "state/ctiport.db"',
                                        'state = "%s/state.db"' % by_file.as_posix())
    assert 'state = "' in text
    config = write_config(tmp_path / "ctiport.toml", text)
    flags = ["export", "--from", "dir:samples/mdti", "--to", "stix:%s" % (by_flags / "bundle.json"),
             "--summary", by_flags / "summary.json", "--state", by_flags / "state.db",
             "--actor-as", "threat-actor", "--tlp", "amber", "--marking-set", "tlp2"]
    for round_ in ("first", "second"):
        file_run = run_ctiport("export", "--config", config, "--to", "stix:%s" % (by_file / "bundle.json"))
        assert file_run.returncode == EXIT_PARTIAL, file_run.describe()
        flags_run = run_ctiport(*flags)
        assert flags_run.returncode == EXIT_PARTIAL, flags_run.describe()
        file_summary = load_json(by_file / "summary.json")
        flags_summary = load_json(by_flags / "summary.json")
        for key in ("new", "changed", "unchanged", "revoked", "run"):
            assert file_summary["state"][key] == flags_summary["state"][key], (round_, key)
        assert file_summary["sinks"][0]["delta"] == flags_summary["sinks"][0]["delta"], round_
        assert canonical_objects(load_json(by_file / "bundle.json").get("objects", [])) == \
            canonical_objects(load_json(by_flags / "bundle.json").get("objects", [])), round_
    assert file_summary["state"]["new"] == 0 and file_summary["sinks"][0]["delta"]["new"] == 0
