"""A MISP REST stand-in for ctiport's end-to-end tests, behaving as shared reference misp.md §6.2
documents (no MISP server can be assembled here, §6.1): the API key check, `HEAD`/`GET`/`POST
/events/view/{id|uuid}`, `POST /events/add` and `POST|PUT /events/edit/{id|uuid}` with MISP's
add and edit semantics (§3.4), and the bootstrap calls PyMISP makes (`/servers/getVersion`,
`/users/view/me`, `/attributes/describeTypes.json`, §3.7).

Every pushed payload is checked with PyMISP (misp_oracle.py, the checker the feed tests use):
each attribute goes through `attribute_verdict` (PyMISP's port of MISP's attribute validation plus
the server rules it lacks), and MISP's behaviour follows: an invalid attribute is **dropped
silently**, a value MISP rewrites is stored rewritten, a duplicate value/type/category collapses.
The stand-in records each of those, and what `misp_problems` finds in the whole payload, for the
tests: `GET /_standin/state` (no key needed) returns the stored events *with* their soft-deleted
attributes, the drops, rewrites, collapses, problems and the request log.

Run by the tests (start_standin) as `python misp_standin.py --key KEY --port-file FILE …`; it binds
127.0.0.1 on a free port and writes the port to FILE.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid as uuidlib
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pymisp import MISPEvent

from misp_oracle import UUID_RE, attribute_verdict, has_4byte, misp_problems

AUTH_FAILED = ("Authentication failed. Please make sure you pass the API key of an API enabled user "
               "along in the Authorization header.")
EXISTS = "Event already exists, if you would like to edit it, use the url in the location header."
NOT_NEWER = "Event could not be saved: Event in the request not newer than the local copy."
PUBLISHED_EMPTY = "Received a published event that was empty. Event add process blocked."
KEY_RE = re.compile(r"^[a-zA-Z0-9]{40}$")
DESCRIBE_TYPES = MISPEvent().describe_types
STARTUP_TIMEOUT = 30

DEFAULT_ROLE = {
    "id": "3", "name": "ctiport push", "perm_add": True, "perm_modify": True,
    "perm_modify_org": True, "perm_publish": False, "perm_delegate": False, "perm_sync": False,
    "perm_admin": False, "perm_audit": False, "perm_auth": True, "perm_site_admin": False,
    "perm_regexp_access": False, "perm_tagger": True, "perm_template": False,
    "perm_sharing_group": False, "perm_tag_editor": True, "perm_sighting": True,
    "perm_object_template": False, "perm_galaxy_editor": False, "perm_decaying": False,
    "perm_warninglist": False, "perm_view_feed_correlations": False, "perm_analyst_data": False,
}
ORG = {"id": "1", "name": "ORGNAME", "uuid": "c5de83b4-36ba-49d6-9530-2a315caeece6", "local": True}


def now() -> int:
    return int(time.time())


def as_int(value, default=0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


class Instance:
    """The instance's data, behind one lock."""

    def __init__(self, key: str, role: dict, known_tags: list[str], fail_first: int):
        self.key = key
        self.role = role
        self.fail_first = fail_first
        self.lock = threading.Lock()
        self.events: dict[str, dict] = {}        # uuid -> stored event (internal form)
        self.attribute_owner: dict[str, str] = {}  # attribute uuid -> event uuid
        self.tags: dict[str, dict] = {}
        self.next_id = {"event": 1, "attribute": 1, "tag": 1, "report": 1}
        self.requests: list[dict] = []
        self.dropped: list[dict] = []
        self.rewritten: list[dict] = []
        self.collapsed: list[dict] = []
        self.ignored: list[dict] = []
        self.tags_not_attached: list[dict] = []
        self.problems: list[dict] = []
        self.header_problems: list[str] = []
        for name in known_tags:
            self.tag(name, create=True)

    def new_id(self, kind: str) -> str:
        value = self.next_id[kind]
        self.next_id[kind] += 1
        return str(value)

    def tag(self, name: str, create: bool) -> dict | None:
        if name not in self.tags and create:
            self.tags[name] = {"id": self.new_id("tag"), "name": name,
                               "colour": "#" + uuidlib.uuid5(uuidlib.NAMESPACE_OID, name).hex[:6],
                               "exportable": True, "user_id": "0", "hide_tag": False,
                               "numerical_value": None, "is_galaxy": name.startswith("misp-galaxy:"),
                               "is_custom_galaxy": False, "local_only": False}
        return self.tags.get(name)

    def find(self, ident: str) -> dict | None:
        if ident in self.events:
            return self.events[ident]
        for event in self.events.values():
            if event["id"] == ident:
                return event
        return None


# --- representation -----------------------------------------------------------------------------


def attribute_json(event: dict, a: dict) -> dict:
    return {"id": a["id"], "type": a["type"], "category": a["category"], "to_ids": a["to_ids"],
            "uuid": a["uuid"], "event_id": event["id"], "distribution": a["distribution"],
            "timestamp": str(a["timestamp"]), "comment": a["comment"], "sharing_group_id": "0",
            "deleted": a["deleted"], "disable_correlation": a["disable_correlation"],
            "object_id": "0", "object_relation": None, "first_seen": a["first_seen"],
            "last_seen": a["last_seen"], "value": a["value"], "Galaxy": [], "ShadowAttribute": []}


def event_json(instance: Instance, event: dict, deleted: bool, metadata: bool = False) -> dict:
    live = [a for a in event["attributes"] if deleted or not a["deleted"]]
    body = {
        "id": event["id"], "orgc_id": event["Orgc"]["id"], "org_id": ORG["id"],
        "date": event["date"], "threat_level_id": event["threat_level_id"], "info": event["info"],
        "published": event["published"], "uuid": event["uuid"],
        "attribute_count": str(sum(1 for a in event["attributes"] if not a["deleted"])),
        "analysis": event["analysis"], "timestamp": str(event["timestamp"]),
        "distribution": event["distribution"], "proposal_email_lock": False, "locked": False,
        "publish_timestamp": "0", "sharing_group_id": "0", "disable_correlation": False,
        "extends_uuid": event["extends_uuid"], "protected": None,
        "event_creator_email": "push@example.org",
        "Org": dict(ORG), "Orgc": dict(event["Orgc"]),
        "Tag": [dict(instance.tags[name], local=0, relationship_type=None) for name in event["tags"]],
        "Galaxy": [], "RelatedEvent": [], "ShadowAttribute": [], "CryptographicKey": [],
    }
    if not metadata:
        body["Attribute"] = [attribute_json(event, a) for a in live]
        body["Object"] = []
        body["EventReport"] = [
            {"id": r["id"], "uuid": r["uuid"], "event_id": event["id"], "name": r["name"],
             "content": r["content"], "distribution": r["distribution"], "sharing_group_id": "0",
             "timestamp": str(r["timestamp"]), "deleted": r["deleted"]}
            for r in event["reports"] if deleted or not r["deleted"]]
    return body


# --- validation ---------------------------------------------------------------------------------


EVENT_RULES = {
    "threat_level_id": ({"1", "2", "3", "4"}, "Options : 1, 2, 3, 4 (for High, Medium, Low, Undefined)"),
    "analysis": ({"0", "1", "2"}, "Options: 0, 1, 2 (for Initial, Ongoing, Completed)"),
    "distribution": ({"0", "1", "2", "3", "4"},
                     "Options: Your organisation only, This community only, Connected communities, "
                     "All communities, Sharing group"),
}
ANALYSIS_NAMES = {"Initial": "0", "Ongoing": "1", "Completed": "2"}


def event_field_errors(body: dict, adding: bool) -> dict:
    """Event::$validate for the fields present (on add, `info` is required)."""
    errors: dict = {}
    if adding or "info" in body:
        if not str(body.get("info", "")).strip():
            errors["info"] = ["Info cannot be empty."]
    if "date" in body and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(body["date"])):
        errors["date"] = ["Expected date format: YYYY-MM-DD"]
    for field, (allowed, message) in EVENT_RULES.items():
        if field in body:
            value = str(body[field])
            if field == "analysis":
                value = ANALYSIS_NAMES.get(value, value)
            if value not in allowed:
                errors[field] = [message]
    if "uuid" in body and not UUID_RE.match(str(body["uuid"]).lower()):
        errors["uuid"] = ["Please provide a valid RFC 4122 UUID"]
    extends = str(body.get("extends_uuid") or "")
    if extends and not (UUID_RE.match(extends.lower()) or extends.isdigit()):
        errors["extends_uuid"] = ["Invalid extends_uuid"]
    return errors


def save_fail(action: str, url: str, errors, event_id: str | None = None) -> dict:
    name = "Could not %s Event" % action
    body = {"saved": False, "name": name, "message": name, "url": url, "errors": errors}
    if event_id is not None:
        body["id"] = event_id
    return body


# --- the handler --------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "MISP-standin/2.5.1"
    protocol_version = "HTTP/1.1"

    @property
    def instance(self) -> Instance:
        return self.server.instance  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # noqa: A002  (quiet: the state endpoint has the log)
        pass

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def do_PUT(self):
        self.handle_request("PUT")

    def do_HEAD(self):
        self.handle_request("HEAD")

    def do_DELETE(self):
        self.handle_request("DELETE")

    def send_json(self, status: int, body, headers: dict | None = None) -> None:
        data = b"" if self.command == "HEAD" else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.status = status

    def api_error(self, status: int, message: str) -> None:
        self.send_json(status, {"name": message, "message": message, "url": self.path})

    def handle_request(self, method: str) -> None:
        self.status = 0
        length = as_int(self.headers.get("Content-Length"), 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path.startswith("/_standin/"):
            return self.standin(path)
        with self.instance.lock:
            try:
                self.route(method, path, raw)
            finally:
                self.instance.requests.append({"method": method, "path": path, "status": self.status})

    def authorized(self) -> bool:
        values = [self.headers.get("Authorization") or "", self.headers.get("X-MISP-AUTH") or ""]
        keys = [k.strip() for v in values if not v.startswith("Basic") for k in v.split(",")]
        return any(KEY_RE.match(k) and k == self.instance.key for k in keys)

    def route(self, method: str, path: str, raw: bytes) -> None:
        instance = self.instance
        if instance.fail_first > 0:
            instance.fail_first -= 1
            return self.api_error(503, "Service Unavailable")
        if not self.authorized():
            return self.api_error(403, AUTH_FAILED)
        accept = self.headers.get("Accept", "")
        if accept != "application/json" and not path.endswith(".json"):
            # Not REST mode (IndexFilterComponent::isRest): MISP answers its HTML login page.
            instance.header_problems.append("%s %s: Accept %r" % (method, path, accept))
            return self.redirect_to_login()
        if raw and self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            instance.header_problems.append("%s %s: Content-Type %r"
                                            % (method, path, self.headers.get("Content-Type")))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.api_error(400, "Malformed JSON")
        parts = [p for p in path.split("/") if p]
        named = {p.split(":", 1)[0]: p.split(":", 1)[1] for p in parts if ":" in p}
        parts = [p for p in parts if ":" not in p]
        metadata = named.get("metadata") == "1"
        if parts == ["servers", "getVersion"] and method == "GET":
            role = instance.role
            return self.send_json(200, {
                "version": "2.5.1", "pymisp_recommended_version": "2.5.1",
                "perm_sync": role["perm_sync"], "perm_sighting": role["perm_sighting"],
                "perm_galaxy_editor": role["perm_galaxy_editor"],
                "perm_analyst_data": role["perm_analyst_data"], "uuid": "-",
                "request_encoding": [], "filter_sightings": True})
        if parts == ["users", "view", "me"] and method == "GET":
            return self.send_json(200, {
                "User": {"id": "1", "org_id": ORG["id"], "email": "push@example.org",
                         "role_id": instance.role["id"], "disabled": False},
                "Role": dict(instance.role), "UserSetting": {}, "Organisation": dict(ORG)})
        if parts == ["attributes", "describeTypes.json"] and method == "GET":
            return self.send_json(200, {"result": DESCRIBE_TYPES})
        if parts[:2] in (["events", "add"],) or (parts == ["events"] and method == "POST"):
            if method != "POST":
                return self.api_error(405, "Method not allowed")
            return self.add(unwrap(body), metadata)
        if parts[:2] == ["events", "view"] and len(parts) == 3:
            deleted = named.get("deleted") in ("1", "[0,1]") or bool(body.get("deleted"))
            return self.view(parts[2], method, deleted)
        if parts[:2] == ["events", "edit"] and len(parts) == 3 and method in ("POST", "PUT"):
            return self.edit(parts[2], unwrap(body), metadata)
        if len(parts) == 2 and parts[0] == "events":
            if method == "GET":
                return self.view(parts[1], method, False)
            if method in ("POST", "PUT"):
                return self.edit(parts[1], unwrap(body), metadata)
        return self.api_error(404, "Not found (not implemented by the stand-in)")

    def redirect_to_login(self) -> None:
        data = b"<!DOCTYPE html><html><body>Login</body></html>"
        self.send_response(302)
        self.send_header("Location", "/users/login")
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.status = 302

    # --- /events/view ---------------------------------------------------------------------------

    def view(self, ident: str, method: str, deleted: bool) -> None:
        event = self.instance.find(ident.lower() if UUID_RE.match(ident.lower()) else ident)
        if method == "HEAD":
            if event is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.status = 404
            else:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.status = 200
            return None
        if event is None:
            return self.api_error(404, "Invalid event")
        return self.send_json(200, {"Event": event_json(self.instance, event, deleted)})

    # --- /events/add ----------------------------------------------------------------------------

    def add(self, body: dict, metadata: bool) -> None:
        instance = self.instance
        url = "/events/add"
        sent_uuid = str(body.get("uuid") or "")
        if sent_uuid and sent_uuid in instance.events:
            existing = instance.events[sent_uuid]
            scheme = "https" if self.server.tls else "http"  # type: ignore[attr-defined]
            base = "%s://%s:%d" % ((scheme,) + tuple(self.server.server_address[:2]))  # type: ignore[attr-defined]
            return self.send_json(404, {"name": EXISTS, "message": EXISTS, "url": url},
                                  {"Location": "%s/events/%s" % (base, existing["id"])})
        attributes = body.get("Attribute") or []
        if body.get("published") and not (attributes or body.get("Object") or body.get("EventReport")):
            return self.send_json(403, save_fail("add", url, {"Event": PUBLISHED_EMPTY}))
        errors = event_field_errors(body, adding=True)
        if not errors and sent_uuid and sent_uuid.lower() in instance.events:
            errors["uuid"] = ["The UUID provided is not unique"]
        if errors:
            return self.send_json(403, save_fail("add", url, {"Event": errors}))
        self.check_payload(body, None)
        event_uuid = sent_uuid.lower() or str(uuidlib.uuid4())
        orgc = ORG
        if instance.role["perm_sync"] and isinstance(body.get("Orgc"), dict):
            orgc = {"id": "2", "name": body["Orgc"].get("name", ""), "uuid": body["Orgc"].get("uuid", "")}
        analysis = str(body.get("analysis", "0"))
        event = {
            "id": instance.new_id("event"), "uuid": event_uuid, "info": str(body["info"]),
            "date": str(body.get("date") or date.today().isoformat()),
            "threat_level_id": str(body.get("threat_level_id", "4")),
            "analysis": ANALYSIS_NAMES.get(analysis, analysis),
            "distribution": str(body.get("distribution", "0")),
            "published": bool(body.get("published")) and instance.role["perm_publish"],
            "timestamp": as_int(body.get("timestamp"), 0) or now(),
            "extends_uuid": str(body.get("extends_uuid") or ""),
            "Orgc": dict(orgc), "tags": [], "attributes": [], "reports": [],
        }
        instance.events[event_uuid] = event
        # Exact duplicates value|type|category inside one payload collapse (Event.php L3932).
        seen = set()
        for raw in attributes:
            key = (str(raw.get("value")), raw.get("type"),
                   raw.get("category") or DESCRIBE_TYPES["sane_defaults"].get(raw.get("type"), {}).get("default_category"))
            if key in seen:
                instance.collapsed.append({"event": event_uuid, "uuid": raw.get("uuid"), "type": key[1],
                                           "value": key[0]})
                continue
            seen.add(key)
            self.capture_new_attribute(event, raw)
        for tag in body.get("Tag") or []:
            self.attach_tag(event, tag)
        for report in body.get("EventReport") or []:
            self.capture_report(event, report)
        return self.send_json(200, {"Event": event_json(instance, event, False, metadata)})

    # --- /events/edit ---------------------------------------------------------------------------

    def edit(self, ident: str, body: dict, metadata: bool) -> None:
        instance = self.instance
        target = str(body.get("uuid") or "").lower() or ident
        event = instance.find(target) or instance.find(ident)
        if event is None:
            return self.api_error(404, "Invalid event")
        url = "/events/edit/%s" % event["id"]
        if event["Orgc"]["id"] != ORG["id"] and not instance.role["perm_site_admin"]:
            return self.api_error(403, "You are not authorised to do that.")
        if "timestamp" in body and as_int(body["timestamp"]) <= event["timestamp"]:
            return self.send_json(403, save_fail("edit", url, NOT_NEWER, event["id"]))
        errors = event_field_errors(body, adding=False)
        if errors:
            return self.send_json(403, save_fail("edit", url, {"Event": errors}, event["id"]))
        self.check_payload(body, event)
        for field in ("info", "date", "threat_level_id", "distribution", "extends_uuid"):
            if field in body:
                event[field] = str(body[field] or "")
        if "analysis" in body:
            event["analysis"] = ANALYSIS_NAMES.get(str(body["analysis"]), str(body["analysis"]))
        event["published"] = bool(body.get("published")) and instance.role["perm_publish"]
        event["timestamp"] = as_int(body.get("timestamp"), 0) or now()
        for raw in body.get("Attribute") or []:
            attribute_uuid = str(raw.get("uuid") or "").lower()
            stored = next((a for a in event["attributes"] if a["uuid"] == attribute_uuid), None)
            if stored is None:
                self.capture_new_attribute(event, raw)
                continue
            incoming = raw.get("timestamp")
            if incoming not in (None, "") and as_int(incoming) <= stored["timestamp"]:
                # MISP keeps its copy without a word; recorded so that tests can see it.
                instance.ignored.append({"event": event["uuid"], "uuid": attribute_uuid,
                                         "type": stored["type"], "value": stored["value"],
                                         "reason": "attribute timestamp %s not newer than %s"
                                         % (incoming, stored["timestamp"])})
                continue
            merged = dict(attribute_json(event, stored), **raw)
            normalized, reason = attribute_verdict(merged, DESCRIBE_TYPES)
            if normalized is None:
                self.record_drop(event, raw, reason)
                continue
            self.record_rewrite(event, normalized)
            stored.update({k: normalized[k] for k in (
                "type", "category", "value", "to_ids", "comment", "distribution", "first_seen",
                "last_seen", "deleted", "disable_correlation")})
            stored["timestamp"] = as_int(incoming, 0) or now()
        for tag in body.get("Tag") or []:
            if tag.get("deleted"):
                if instance.role["perm_tagger"] and tag.get("name") in event["tags"]:
                    event["tags"].remove(tag["name"])
            else:
                self.attach_tag(event, tag)
        for report in body.get("EventReport") or []:
            stored = next((r for r in event["reports"] if r["uuid"] == str(report.get("uuid", "")).lower()), None)
            if stored is None:
                self.capture_report(event, report)
            elif report.get("timestamp") in (None, "") or as_int(report["timestamp"]) > stored["timestamp"]:
                stored.update(name=str(report.get("name", stored["name"])),
                              content=str(report.get("content", stored["content"])),
                              deleted=bool(report.get("deleted", False)),
                              timestamp=as_int(report.get("timestamp"), 0) or now())
            else:
                instance.ignored.append({"event": event["uuid"], "uuid": stored["uuid"],
                                         "type": "EventReport", "value": stored["name"],
                                         "reason": "report timestamp not newer"})
        return self.send_json(200, {"Event": event_json(instance, event, False, metadata)})

    # --- capture --------------------------------------------------------------------------------

    def capture_new_attribute(self, event: dict, raw: dict) -> None:
        instance = self.instance
        normalized, reason = attribute_verdict(raw, DESCRIBE_TYPES)
        if normalized is None:
            return self.record_drop(event, raw, reason)
        attribute_uuid = normalized["uuid"] or str(uuidlib.uuid4())
        owner = instance.attribute_owner.get(attribute_uuid)
        if owner is not None:
            return self.record_drop(event, raw, "An attribute was blocked from being saved due to a "
                                                "duplicate UUID (it belongs to event %s)" % owner)
        self.record_rewrite(event, normalized)
        stored = {k: normalized[k] for k in (
            "type", "category", "value", "to_ids", "comment", "distribution", "first_seen",
            "last_seen", "deleted", "disable_correlation")}
        stored.update(id=instance.new_id("attribute"), uuid=attribute_uuid,
                      timestamp=as_int(raw.get("timestamp"), 0) or now())
        event["attributes"].append(stored)
        instance.attribute_owner[attribute_uuid] = event["uuid"]
        return None

    def record_drop(self, event: dict, raw: dict, reason: str) -> None:
        self.instance.dropped.append({"event": event["uuid"], "uuid": raw.get("uuid"),
                                      "type": raw.get("type"), "value": raw.get("value"),
                                      "reason": reason})

    def record_rewrite(self, event: dict, normalized: dict) -> None:
        if "rewritten_from" in normalized:
            self.instance.rewritten.append({"event": event["uuid"], "uuid": normalized["uuid"],
                                            "type": normalized["type"],
                                            "sent": normalized["rewritten_from"],
                                            "stored": normalized["value"]})

    def attach_tag(self, event: dict, tag: dict) -> None:
        """Tag::captureTag: a known tag is attached; an unknown one is created only with
        perm_tag_editor, else silently not attached. Attaching needs perm_tagger."""
        instance = self.instance
        name = str(tag.get("name", "")).strip()
        known = instance.tag(name, create=bool(name) and instance.role["perm_tag_editor"])
        if known is None or not instance.role["perm_tagger"]:
            instance.tags_not_attached.append({"event": event["uuid"], "tag": name})
            return
        if name not in event["tags"]:
            event["tags"].append(name)

    def capture_report(self, event: dict, report: dict) -> None:
        instance = self.instance
        if not str(report.get("name", "")).strip():
            instance.dropped.append({"event": event["uuid"], "uuid": report.get("uuid"),
                                     "type": "EventReport", "value": "", "reason": "name notBlank"})
            return
        event["reports"].append({
            "id": instance.new_id("report"), "uuid": str(report.get("uuid") or uuidlib.uuid4()).lower(),
            "name": str(report["name"]), "content": str(report.get("content", "")),
            "distribution": str(report.get("distribution", "5")),
            "timestamp": as_int(report.get("timestamp"), 0) or now(),
            "deleted": bool(report.get("deleted", False))})

    def check_payload(self, body: dict, stored: dict | None) -> None:
        """misp_problems on the payload (for an edit, completed with the stored header), recorded."""
        document = copy.deepcopy(body)
        if stored is not None:
            for field in ("info", "date", "threat_level_id", "analysis", "distribution", "uuid"):
                document.setdefault(field, stored[field])
            document.setdefault("Orgc", stored["Orgc"])
        try:
            found = misp_problems({"Event": document})
        except Exception as e:  # a structural error PyMISP's loader raises
            found = ["PyMISP cannot load the payload: %r" % e]
        for problem in found:
            self.instance.problems.append({"event": document.get("uuid"), "path": self.path,
                                           "problem": problem})
        for attribute in body.get("Attribute") or []:
            if has_4byte(str(attribute.get("comment", ""))):
                self.instance.problems.append({"event": document.get("uuid"), "path": self.path,
                                               "problem": "4-byte UTF-8 in a comment"})

    # --- test-only ------------------------------------------------------------------------------

    def standin(self, path: str) -> None:
        instance = self.instance
        if path == "/_standin/state":
            with instance.lock:
                state = {
                    "events": {u: event_json(instance, e, True) for u, e in instance.events.items()},
                    "dropped": instance.dropped, "rewritten": instance.rewritten,
                    "collapsed": instance.collapsed, "ignored": instance.ignored,
                    "tags_not_attached": instance.tags_not_attached,
                    "problems": instance.problems, "header_problems": instance.header_problems,
                    "requests": instance.requests,
                }
                return self.send_json(200, state)
        return self.api_error(404, "unknown stand-in endpoint")


def unwrap(body):
    """The bare event of a wrapped (`{"Event": …}`, `{"response": …}`, `{"request": …}`) body."""
    if isinstance(body, dict):
        for key in ("response", "request"):
            if key in body and isinstance(body[key], dict):
                body = body[key]
        if isinstance(body.get("Event"), dict):
            return body["Event"]
        return body
    return {}


# --- starting it from the tests ----------------------------------------------------------------


@dataclass
class StandIn:
    process: subprocess.Popen
    port: int
    key: str
    log_path: Path
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        return "%s://127.0.0.1:%d/" % ("https" if self.ca_file else "http", self.port)

    def state(self) -> dict:
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        with urllib.request.urlopen(self.url + "_standin/state", timeout=10,
                                    context=context) as response:
            return json.load(response)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_standin(directory: Path, key: str, role: dict | None = None,
                  known_tags: tuple = (), fail_first: int = 0,
                  tls: tuple[Path, Path, Path] | None = None) -> StandIn:
    """Starts the stand-in on a free loopback port and waits until it answers; over HTTPS with
    `tls` = (CA certificate, server certificate, server key)."""
    directory.mkdir(parents=True, exist_ok=True)
    port_file = directory / "port"
    log_path = directory / "standin.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--key", key, "--port-file", str(port_file),
               "--role", json.dumps(role or {}), "--fail-first", str(fail_first)]
    for tag in known_tags:
        command += ["--known-tag", tag]
    if tls:
        command += ["--tls-cert", str(tls[1]), "--tls-key", str(tls[2])]
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the MISP stand-in exited with %s:\n%s"
                               % (process.returncode, log_path.read_text(errors="replace")))
        if port_file.is_file() and port_file.read_text().strip():
            server = StandIn(process, int(port_file.read_text()), key, log_path,
                             tls[0] if tls else None)
            try:
                server.state()
                return server
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the MISP stand-in did not start within %d s" % STARTUP_TIMEOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--key", required=True, help="the one valid API key (40 letters and digits)")
    parser.add_argument("--port-file", required=True, type=Path)
    parser.add_argument("--role", default="{}", help="JSON object overriding permissions of the role")
    parser.add_argument("--known-tag", action="append", default=[], help="a tag the instance knows")
    parser.add_argument("--fail-first", type=int, default=0, help="answer the first N requests 503")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="and this key (PEM)")
    args = parser.parse_args()
    role = dict(DEFAULT_ROLE, **json.loads(args.role))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.tls = bool(args.tls_cert)  # type: ignore[attr-defined]
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.instance = Instance(args.key, role, args.known_tag, args.fail_first)  # type: ignore[attr-defined]
    args.port_file.write_text(str(server.server_address[1]))
    print("MISP stand-in on 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
