"""The MISP oracle shared by the feed tests and the MISP REST stand-in: PyMISP's loader and its
port of MISP's attribute validation (`pymisp.tools.validate_event` / `validate_attribute`), plus
the server rules they do not cover (reference misp.md §1.2, §5.1-5.2).

* `misp_problems(document)`: everything wrong with one `{"Event": …}` document, as text; an
  attribute PyMISP drops or rewrites is a problem (MISP would drop it, or store something else).
* `attribute_verdict(raw, describe_types)`: what a MISP server does with one attribute of a
  payload: the value it stores, or why it drops the attribute silently.

pymisp is a hard import: without it this module fails to load.
"""
from __future__ import annotations

import copy
import re
from datetime import datetime, timezone

from pymisp import MISPAttribute, MISPEvent
from pymisp.tools import validate_event
from pymisp.tools.attributevalidationtool import ValidationError, validate_attribute

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_VALUE_BYTES = 65535


def has_4byte(text: str) -> bool:
    return any(ord(c) > 0xFFFF for c in text)


def iso(value: str) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def misp_problems(document: dict) -> list[str]:
    """misp.md §5.2: PyMISP's loader and validate_event, plus the server rules validate_event does
    not cover. An attribute validate_event drops or rewrites is a problem: MISP would drop it, or
    store something else than the feed (its hashes and uuids would then not match)."""
    problems = []
    raw = document["Event"]
    event = MISPEvent()
    event.load(copy.deepcopy(document))  # structural errors raise
    types = event.describe_types
    if not str(raw.get("info", "")).strip():
        problems.append("Event.info empty")
    if "\n" in raw["info"] or len(raw["info"]) > 256:
        problems.append("Event.info is not one short line: %r" % raw["info"])
    if not UUID_RE.match(raw.get("uuid", "")):
        problems.append("Event.uuid not lower-case RFC 4122: %r" % raw.get("uuid"))
    if raw.get("published") and not (raw.get("Attribute") or raw.get("Object") or raw.get("EventReport")):
        problems.append("published empty event is refused")
    if str(raw.get("distribution")) not in {"0", "1", "2", "3"}:
        problems.append("event distribution %r" % raw.get("distribution"))
    utf8mb3 = [raw["info"], raw.get("Orgc", {}).get("name", "")] + [t["name"] for t in raw.get("Tag", [])]
    utf8mb3 += [r["name"] for r in raw.get("EventReport", [])]
    seen = set()
    for a in raw.get("Attribute", []):
        t = a["type"]
        c = a.get("category") or types["sane_defaults"][t]["default_category"]
        if t not in types["category_type_mappings"].get(c, []):
            problems.append("%s/%s: category not allowed" % (t, c))
        if (a["value"], t, c) in seen:
            problems.append("duplicate %s %s (MISP collapses it)" % (t, a["value"]))
        seen.add((a["value"], t, c))
        if a.get("first_seen") and a.get("last_seen") and iso(a["first_seen"]) > iso(a["last_seen"]):
            problems.append("%s %s: last_seen < first_seen" % (t, a["value"]))
        if len(str(a["value"]).encode()) > MAX_VALUE_BYTES:
            problems.append("value > 65535 bytes")
        if not UUID_RE.match(a["uuid"]):
            problems.append("attribute uuid %r" % a["uuid"])
        utf8mb3 += [a["value"], a.get("comment", "")]
    problems += ["4-byte UTF-8 in a utf8mb3 column: %r" % s for s in utf8mb3 if has_4byte(s)]
    before = {a.uuid: (a.type, a.value) for a in event.attributes}
    errors: dict = {}
    validated = validate_event(event, errors)
    after = {a.uuid: (a.type, a.value) for a in validated.attributes}
    for attribute_uuid_, (type_, value) in before.items():
        if attribute_uuid_ not in after:
            problems.append("validate_event dropped %s %r" % (type_, value))
        elif after[attribute_uuid_][1] != value:
            problems.append("MISP would store %s %r as %r" % (type_, value, after[attribute_uuid_][1]))
    return problems + errors.get("warnings", []) + errors.get("errors", [])


def misp_time(value) -> str | None:
    """`first_seen`/`last_seen` as MISP reads them back (`2024-01-02T03:04:05.000000+00:00`), or
    None for an empty value; ValueError for what MISP refuses ("Invalid ISO 8601 format")."""
    if value is None or str(value).strip() == "":
        return None
    parsed = iso(str(value).strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def attribute_verdict(raw: dict, describe_types: dict) -> tuple[dict | None, str]:
    """What MISP's attribute capture does with one attribute of an add or edit payload
    (MispAttribute `$validate`, `beforeValidateMassage`; reference §1.2): `(normalized, "")` with
    the fields as stored, or `(None, reason)` when MISP drops it silently. The value goes through
    PyMISP's `validate_attribute` (MISP's modifyBeforeValidation + validate); a rewritten value is
    stored rewritten (`normalized["rewritten_from"]` holds the value sent)."""
    type_ = raw.get("type")
    if type_ not in describe_types["types"]:
        return None, "Invalid type."
    category = raw.get("category") or describe_types["sane_defaults"][type_]["default_category"]
    if type_ not in describe_types["category_type_mappings"].get(category, []):
        return None, "Category %r is not allowed for type %s." % (category, type_)
    value = str(raw.get("value", "")).strip()
    if not value or not any(c.isprintable() for c in value):
        return None, "Value cannot be empty."
    distribution = str(raw.get("distribution", "5"))
    if distribution not in {"0", "1", "2", "3", "4", "5"}:
        return None, "Options: 0, 1, 2, 3, 4, 5 (distribution %r)" % distribution
    uuid_ = str(raw.get("uuid", "")).lower()
    if uuid_ and not UUID_RE.match(uuid_):
        return None, "Please provide a valid RFC 4122 UUID"
    try:
        first_seen = misp_time(raw.get("first_seen"))
        last_seen = misp_time(raw.get("last_seen"))
    except ValueError:
        return None, "Invalid ISO 8601 format"
    if first_seen and last_seen and last_seen < first_seen:
        return None, "Last seen value should be greater than first seen value"
    attribute = MISPAttribute(describe_types=describe_types)
    attribute.from_dict(type=type_, value=value, category=category)
    try:
        validated = validate_attribute(attribute)
    except ValidationError as e:
        return None, str(e)
    except Exception as e:  # PyMISPError: the attribute cannot be validated at all
        return None, "could not be validated: %s" % e
    stored_value = validated.value
    if len(str(stored_value).encode()) > MAX_VALUE_BYTES:
        return None, "Value too long (more than 65535 bytes)."
    normalized = {
        "uuid": uuid_,
        "type": type_,
        "category": category,
        "value": stored_value,
        "to_ids": bool(raw["to_ids"]) if "to_ids" in raw
        else bool(describe_types["sane_defaults"][type_]["to_ids"]),
        "comment": str(raw.get("comment") or ""),
        "distribution": distribution,
        "first_seen": first_seen,
        "last_seen": last_seen,
        "deleted": bool(raw.get("deleted", False)),
        "disable_correlation": bool(raw.get("disable_correlation", False)),
    }
    if stored_value != value:
        normalized["rewritten_from"] = value
    return normalized, ""
