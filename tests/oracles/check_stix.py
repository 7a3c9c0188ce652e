#!/usr/bin/env python3
"""Independent STIX 2.1 oracle for ctiport output (pinned OASIS tools, see requirements.txt).

Usage (CLI):
    .venv/bin/python tests/oracles/check_stix.py [--allow-based-on-sco] BUNDLE_OR_DIR [...]

Usage (module):
    from check_stix import check_file, check_bundle, check_paths
    problems = check_file("out/bundle.json")            # [] when everything passes

Checks, per bundle file:
  validator   stix2-validator 3.2.0, equivalent of
              `stix2_validator --version 2.1 --strict -d 103 --enforce-refs`
              (plus `-d 202` with --allow-based-on-sco: indicator --based-on--> SCO is off-spec)
  pattern     every indicator pattern through stix2patterns.validator.validate(..., '2.1')
              (pattern_type must be 'stix')
  parse       stix2.parse(bundle, allow_custom=False); failures re-run per object to name it
  sco-id      every SCO rebuilt with the stix2 library from its ID-contributing properties
              (no id given); the library's deterministic UUIDv5 id must equal the bundle's
  refs        every *_ref / *_refs value (anywhere in an object, e.g. created_by_ref,
              object_marking_refs, granular_markings[].marking_ref, note object_refs) must
              resolve inside the same bundle. The validator's --enforce-refs only looks at
              relationship source_ref/target_ref. The four TLP 1.0 markings predefined by the
              STIX 2.1 spec may be referenced without being shipped (pass --strict-refs to
              forbid that too).
  timestamp   project convention (stix-taxii reference §0.3): every timestamp property is
              YYYY-MM-DDTHH:MM:SS.sssZ with exactly three fractional digits. The validator only
              enforces >= 3 digits for created/modified. Disable with --any-timestamp-precision.
  structure   top level is a bundle with a bundle-- id and an objects list; no id appears
              twice in one bundle.

Every problem is printed as `<file>: <object id>: [<check>] <message>`; exit status 1 if
there is any problem, 2 on usage errors (no input / unreadable directory), 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

# Hard imports on purpose: a missing oracle must be an error, never a silent skip.
import stix2
import stix2.registry
import stix2.v21
from stix2patterns.validator import validate as validate_pattern
from stix2validator import ValidationOptions, validate_file, validate_parsed_json

__all__ = [
    "Problem",
    "check_bundle",
    "check_file",
    "check_paths",
    "bundle_files",
    "format_problem",
    "main",
]

# The SCO types ctiport can emit, mapped explicitly to the stix2 classes used to rebuild them.
SCO_CLASSES = {
    "ipv4-addr": stix2.v21.IPv4Address,
    "ipv6-addr": stix2.v21.IPv6Address,
    "domain-name": stix2.v21.DomainName,
    "url": stix2.v21.URL,
    "email-addr": stix2.v21.EmailAddress,
    "file": stix2.v21.File,
    "x509-certificate": stix2.v21.X509Certificate,
    "autonomous-system": stix2.v21.AutonomousSystem,
}

# STIX 2.1 §7.2.1.4: the predefined TLP 1.0 marking definitions.
PREDEFINED_MARKINGS = frozenset({
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",  # TLP:WHITE
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",  # TLP:GREEN
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",  # TLP:AMBER
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",  # TLP:RED
})

TIMESTAMP_PROPS = (
    "created", "modified", "valid_from", "valid_until", "first_seen", "last_seen",
    "start_time", "stop_time", "published", "first_observed", "last_observed",
)
MS_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STIX_ID_RE = re.compile(r"[a-z][a-z0-9-]*[a-z0-9]--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                        r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Problem:
    source: str      # file name (or "<bundle>")
    object_id: str   # STIX id of the offending object (bundle id when not attributable)
    check: str       # validator | pattern | parse | sco-id | refs | timestamp | structure
    message: str

    def __str__(self) -> str:
        return format_problem(self)


def format_problem(p: Problem) -> str:
    return "%s: %s: [%s] %s" % (p.source, p.object_id, p.check, p.message)


def _validator_options(allow_based_on_sco: bool) -> ValidationOptions:
    disabled = "103,202" if allow_based_on_sco else "103"
    return ValidationOptions(version="2.1", strict=True, disabled=disabled, enforce_refs=True)


def _object_id_in(message: str, default: str) -> str:
    m = STIX_ID_RE.search(message)
    return m.group(0) if m else default


def _validator_problems(results: Any, source: str, bundle_id: str) -> list[Problem]:
    """Flatten stix2validator results (File/Object/ValidationError results) into Problems."""
    out: list[Problem] = []
    fatal = getattr(results, "fatal", None)
    if fatal is not None:
        out.append(Problem(source, bundle_id, "validator", "fatal: %s" % fatal.error))
    obj_results = getattr(results, "object_results", None)
    if obj_results is None:
        obj_results = results if isinstance(results, list) else [results]
    for r in obj_results:
        errors = getattr(r, "errors", None) or []
        for e in errors:
            msg = str(e)
            oid = _object_id_in(msg, bundle_id)
            if msg.startswith(oid + ": "):
                msg = msg[len(oid) + 2:]
            out.append(Problem(source, oid, "validator", msg))
        if not r.is_valid and not errors:
            msg = getattr(r, "error", None) or "validator reported the bundle invalid without a message"
            out.append(Problem(source, bundle_id, "validator", str(msg)))
    if not out and not results_is_valid(results):
        out.append(Problem(source, bundle_id, "validator", "validator reported the bundle invalid"))
    return out


def results_is_valid(results: Any) -> bool:
    if isinstance(results, list):
        return all(r.is_valid for r in results)
    return bool(results.is_valid)


def _run_validator(bundle: dict, path: str | None, source: str, bundle_id: str,
                   allow_based_on_sco: bool) -> list[Problem]:
    opts = _validator_options(allow_based_on_sco)
    try:
        if path is not None:
            results = validate_file(path, opts)
        else:
            results = validate_parsed_json(bundle, opts)
    except Exception as e:  # noqa: BLE001 - an oracle crash is a finding, report it
        return [Problem(source, bundle_id, "validator", "validator raised %s: %s" % (type(e).__name__, e))]
    return _validator_problems(results, source, bundle_id)


def _check_patterns(objects: list, source: str) -> list[Problem]:
    out = []
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("type") != "indicator":
            continue
        oid = obj.get("id", "<no id>")
        pattern = obj.get("pattern")
        if not isinstance(pattern, str):
            out.append(Problem(source, oid, "pattern", "indicator has no string 'pattern'"))
            continue
        if obj.get("pattern_type") != "stix":
            out.append(Problem(source, oid, "pattern",
                               "pattern_type is %r, expected 'stix'" % obj.get("pattern_type")))
        if obj.get("pattern_version", "2.1") != "2.1":
            out.append(Problem(source, oid, "pattern",
                               "pattern_version is %r, expected '2.1'" % obj.get("pattern_version")))
        try:
            ok, errs = validate_pattern(pattern, stix_version="2.1", ret_errs=True)
        except Exception as e:  # noqa: BLE001
            ok, errs = False, ["stix2patterns raised %s: %s" % (type(e).__name__, e)]
        if not ok:
            for err in errs or ["invalid pattern"]:
                out.append(Problem(source, oid, "pattern", "%s -- pattern: %s" % (err, pattern)))
    return out


def _check_parse(bundle: dict, objects: list, source: str, bundle_id: str) -> list[Problem]:
    try:
        stix2.parse(bundle, allow_custom=False)
        return []
    except Exception as bundle_exc:  # noqa: BLE001
        out = []
        for obj in objects:
            try:
                stix2.parse(obj, allow_custom=False, version="2.1")
            except Exception as e:  # noqa: BLE001
                oid = obj.get("id", "<no id>") if isinstance(obj, dict) else "<not an object>"
                out.append(Problem(source, oid, "parse", "%s: %s" % (type(e).__name__, e)))
        if not out:
            out.append(Problem(source, bundle_id, "parse",
                               "%s: %s" % (type(bundle_exc).__name__, bundle_exc)))
        return out


def expected_sco_id(obj: dict) -> str:
    """The id the stix2 library generates for `obj` from its ID-contributing properties."""
    cls = SCO_CLASSES.get(obj["type"])
    if cls is None:
        cls = stix2.registry.class_for_type(obj["type"], "2.1", "observables")
    props = {p: obj[p] for p in cls._id_contributing_properties if p in obj}
    if not props:
        raise ValueError("none of the ID-contributing properties %s is present"
                         % list(cls._id_contributing_properties))
    return cls(allow_custom=False, **props).id


def _check_sco_ids(objects: list, source: str) -> list[Problem]:
    out = []
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("type") not in SCO_CLASSES:
            continue
        oid = obj.get("id", "<no id>")
        try:
            want = expected_sco_id(obj)
        except Exception as e:  # noqa: BLE001
            out.append(Problem(source, oid, "sco-id",
                               "cannot rebuild with stix2: %s: %s" % (type(e).__name__, e)))
            continue
        if want != oid:
            out.append(Problem(source, oid, "sco-id", "stix2 library generates %s for this %s"
                               % (want, obj["type"])))
    return out


def _iter_refs(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield (property path, referenced id) for every *_ref / *_refs anywhere in `value`."""
    if isinstance(value, dict):
        for k, v in value.items():
            p = "%s.%s" % (path, k) if path else k
            if k.endswith("_ref") and isinstance(v, str):
                yield p, v
            elif k.endswith("_refs") and isinstance(v, list):
                for i, item in enumerate(v):
                    if isinstance(item, str):
                        yield "%s[%d]" % (p, i), item
            else:
                yield from _iter_refs(v, p)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _iter_refs(item, "%s[%d]" % (path, i))


def _check_refs(objects: list, source: str, strict_refs: bool) -> list[Problem]:
    ids = {o.get("id") for o in objects if isinstance(o, dict)}
    out = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        oid = obj.get("id", "<no id>")
        for prop, ref in _iter_refs({k: v for k, v in obj.items() if k != "id"}):
            if ref in ids:
                continue
            if not strict_refs and ref in PREDEFINED_MARKINGS:
                continue
            out.append(Problem(source, oid, "refs", "%s = %s is not in this bundle" % (prop, ref)))
    return out


def _check_timestamps(objects: list, source: str) -> list[Problem]:
    out = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        for prop in TIMESTAMP_PROPS:
            v = obj.get(prop)
            if v is not None and not (isinstance(v, str) and MS_TIMESTAMP_RE.match(v)):
                out.append(Problem(source, obj.get("id", "<no id>"), "timestamp",
                                   "%s = %r is not YYYY-MM-DDTHH:MM:SS.sssZ (exactly 3 fractional digits)"
                                   % (prop, v)))
    return out


def check_bundle(bundle: Any, *, allow_based_on_sco: bool = False, source: str = "<bundle>",
                 strict_refs: bool = False, ms_timestamps: bool = True,
                 _path: str | None = None) -> list[Problem]:
    """Run every check on an already-parsed bundle; return the problems (empty = pass)."""
    if not isinstance(bundle, dict):
        return [Problem(source, "<bundle>", "structure", "top level is not a JSON object")]
    bundle_id = bundle.get("id") if isinstance(bundle.get("id"), str) else "<bundle>"
    problems: list[Problem] = []
    if bundle.get("type") != "bundle":
        problems.append(Problem(source, bundle_id, "structure", "type is %r, expected 'bundle'"
                                % bundle.get("type")))
    if not bundle_id.startswith("bundle--"):
        problems.append(Problem(source, bundle_id, "structure", "bundle id %r" % bundle_id))
    objects = bundle.get("objects")
    if not isinstance(objects, list):
        problems.append(Problem(source, bundle_id, "structure", "'objects' is not a list"))
        return problems
    seen: set = set()
    for obj in objects:
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) \
                or not isinstance(obj.get("type"), str):
            problems.append(Problem(source, bundle_id, "structure",
                                    "object without string 'type'/'id': %.200s" % json.dumps(obj)))
            return problems + _run_validator(bundle, _path, source, bundle_id, allow_based_on_sco)
        if obj["id"] in seen:
            problems.append(Problem(source, obj["id"], "structure", "id appears more than once"))
        seen.add(obj["id"])

    problems += _run_validator(bundle, _path, source, bundle_id, allow_based_on_sco)
    problems += _check_patterns(objects, source)
    problems += _check_parse(bundle, objects, source, bundle_id)
    problems += _check_sco_ids(objects, source)
    problems += _check_refs(objects, source, strict_refs)
    if ms_timestamps:
        problems += _check_timestamps(objects, source)
    return problems


def check_file(path: str | os.PathLike, **kwargs: Any) -> list[Problem]:
    """Load one bundle file and run check_bundle on it (validator reads the file itself)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            bundle = json.load(f)
    except (OSError, ValueError) as e:
        return [Problem(path, "<bundle>", "structure", "cannot read JSON: %s" % e)]
    return check_bundle(bundle, source=path, _path=path, **kwargs)


def bundle_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand directories to their *.json files (sorted, not recursive)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.is_file() and x.suffix.lower() == ".json")
            if not found:
                raise FileNotFoundError("no *.json bundle in directory %s" % p)
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError("no such file or directory: %s" % p)
    return files


def check_paths(paths: Iterable[str | os.PathLike], **kwargs: Any) -> list[Problem]:
    problems: list[Problem] = []
    for f in bundle_files(paths):
        problems += check_file(f, **kwargs)
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="bundle files or directories of *.json bundles")
    ap.add_argument("--allow-based-on-sco", action="store_true",
                    help="also disable validator check 202 (indicator --based-on--> SCO)")
    ap.add_argument("--strict-refs", action="store_true",
                    help="also require the predefined TLP 1.0 markings to be shipped when referenced")
    ap.add_argument("--any-timestamp-precision", action="store_true",
                    help="do not require exactly 3 fractional digits in timestamps")
    ap.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    args = ap.parse_args(argv)
    try:
        files = bundle_files(args.paths)
    except FileNotFoundError as e:
        print("check_stix: %s" % e, file=sys.stderr)
        return 2
    total = 0
    for f in files:
        problems = check_file(f, allow_based_on_sco=args.allow_based_on_sco,
                              strict_refs=args.strict_refs,
                              ms_timestamps=not args.any_timestamp_precision)
        for p in problems:
            print(format_problem(p))
        if not args.quiet:
            print("%s: %s" % (f, "OK" if not problems else "%d problem(s)" % len(problems)),
                  file=sys.stderr)
        total += len(problems)
    if not args.quiet:
        print("check_stix: %d file(s), %d problem(s)" % (len(files), total), file=sys.stderr)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
