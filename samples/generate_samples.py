#!/usr/bin/env python3
"""Deterministic generator for ctiport's sample and fixture dumps (stdlib only).

Writes three dump directories in the layout of docs/contracts.md:

  samples/mdti/                 realistic dump (8 profiles, ~400 indicators, 5 malformed records;
                                6 articles with their indicators, 5 CVEs, 4 malformed article records)
  tests/fixtures/adversarial/   small dump of *valid* but awkward records (escaping, IDN, IPv6, ...)
  tests/fixtures/malformed/     minimal acceptance dump: 2 profiles, 20 good indicators, 4 bad records

plus expectation files (samples/mdti-expected.json, tests/fixtures/*/EXPECTED.json).

All names, domains and addresses are fictional: domains use reserved names (*.example, *.test,
example.com/net/org), IPs come from the documentation ranges 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24 and 2001:db8::/32, hashes are random.

Run from anywhere:  python3 samples/generate_samples.py
The output is byte-for-byte reproducible (fixed seeds, no clock, no set iteration).
"""

import base64
import hashlib
import json
import os
import random
import re
import shutil
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = "microsoft.graph.security"
GRAPH = "https://graph.microsoft.com/v1.0"
UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def pct(s):
    """contracts.md pct(): percent-encode every byte outside RFC 3986 unreserved, upper-case hex."""
    return "".join(chr(b) if b in UNRESERVED else "%%%02X" % b for b in s.encode("utf-8"))


def b64(s):
    return base64.b64encode(s.encode("utf-8")).decode("ascii")


def b64_padded(s):
    """base64 of s, lengthened until the encoding ends in '=' (ids 'with =')."""
    while len(s.encode("utf-8")) % 3 == 0:
        s += "#"
    return b64(s)


def sha256hex(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def guid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hexstr(rng, n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def crlf(*lines):
    return "\r\n".join(lines)


def fc(content, fmt="markdown"):
    return {"@odata.type": NS + ".formattedContent", "content": content, "format": fmt}


def country(label, code, beta=False):
    t = "intelligenceProfileSponsorState" if beta else "intelligenceProfileCountryOrRegionOfOrigin"
    return {"@odata.type": NS + "." + t, "label": label, "code": code}


def stub(atype, value, otype=None):
    return {"@odata.type": otype or ("#" + NS + "." + atype), "id": value}


def unclassified(kind, value, with_id=False, otype=None):
    a = {"@odata.type": otype or ("#" + NS + ".unclassifiedArtifact")}
    if with_id:
        a["id"] = b64_padded(kind + "$$" + value)
    a["kind"] = kind
    a["value"] = value
    return a


def indicator(iid, source, first, last, artifact="__absent__", extra=None):
    rec = {
        "@odata.type": "#" + NS + ".intelligenceProfileIndicator",
        "id": iid,
        "source": source,
        "firstSeenDateTime": first,
        "lastSeenDateTime": last,
    }
    if artifact != "__absent__":
        rec["artifact"] = artifact
    if extra:
        rec.update(extra)
    return rec


def fmt_dt(y, mo, d, h, mi, s, style, ms=0):
    base = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, h, mi, s)
    if style == "s":
        return base + "Z"
    if style == "ms0":
        return base + ".000Z"
    if style == "ms":
        return base + ".%03dZ" % ms
    if style == "7":
        return base + ".%03d0000Z" % ms
    raise ValueError(style)


def rand_dt(rng, y0, y1, styles=("s", "ms0", "ms", "ms", "ms0")):
    y = rng.randint(y0, y1)
    return fmt_dt(y, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
                  rng.randint(0, 59), rng.choice(styles), rng.randint(0, 999))


def later_dt(rng, first):
    """A lastSeen after `first` (same year or up to two years later)."""
    y = int(first[:4]) + rng.randint(1, 2)
    return rand_dt(rng, y, y)


def reset_dir(rel):
    path = os.path.join(ROOT, rel)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def write_json(path, obj, ensure_ascii=False):
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=ensure_ascii) + "\n")


def ndjson_line(obj, ensure_ascii=False):
    return json.dumps(obj, ensure_ascii=ensure_ascii)


def collection(context, items, count=False):
    out = {"@odata.context": context}
    if count:
        out["@odata.count"] = len(items)
    out["value"] = items
    return out


def profiles_context():
    return GRAPH + "/$metadata#security/threatIntelligence/intelProfiles"


def indicators_context(pid):
    return GRAPH + "/$metadata#security/threatIntelligence/intelProfiles('%s')/indicators" % pid


# --------------------------------------------------------------------------------------------
# artifact classification for the expectation files
# --------------------------------------------------------------------------------------------

SKIPPED_TYPES = {"hostcomponent", "hostcookie", "hosttracker", "hostsslcertificate", "passivednsrecord"}
KNOWN_TYPES = SKIPPED_TYPES | {"hostname", "ipaddress", "sslcertificate", "unclassifiedartifact"}


def artifact_type(rec):
    a = rec.get("artifact")
    if not isinstance(a, dict) or "@odata.type" not in a:
        return None
    return a["@odata.type"].lstrip("#").split(".")[-1].lower()


def type_counts(records):
    counts = {}
    for r in records:
        t = artifact_type(r)
        if t == "unclassifiedartifact":
            t = "unclassifiedArtifact:" + r["artifact"]["kind"]
        counts[t or "<none>"] = counts.get(t or "<none>", 0) + 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------------------------
# shared vocabulary
# --------------------------------------------------------------------------------------------

PREFIXES = ["login", "secure", "update", "cdn", "mail", "docs", "portal", "auth", "sync", "files",
            "owa", "vpn", "support", "api", "static", "invoice", "account", "share", "drive", "news"]
MIDS = ["office", "cloudsvc", "m365-verify", "teamsync", "msupdate", "docview", "webmail", "sharepnt",
        "onedrv", "outlk", "azurecdn", "gov-portal", "ngo-relief", "energy-grid", "bank-notify"]
SUFFIXES = ["example", "example.com", "example.net", "example.org", "test"]
PATHS = ["gate.php", "index.php?id=", "dl/", "wp-content/plugins/x/load.php", "api/v2/beacon",
         "update/check", "images/logo.png", "inbox/attach.aspx?f=", "s/", "owa/auth/logon.aspx"]
SERVERS = [("Microsoft-IIS", "10.0", "Server"), ("nginx", "1.18.0", "Server"), ("Apache", "2.4.41", "Server"),
           ("PHP", "7.4.3", "Framework"), ("jQuery", "3.5.1", "JavaScript Library"),
           ("Ubuntu", "20.04", "Operating System"), ("OpenSSH", "8.2p1", "Remote Access")]
COOKIES = ["PHPSESSID", "JSESSIONID", "ASP.NET_SessionId", "OIDC", "__cf_bm", "session"]
TRACKERS = ["GoogleAnalyticsID", "JarmHash", "FaviconHash", "GoogleTagManagerID"]


def rand_host(rng):
    return "%s-%s%d.%s" % (rng.choice(PREFIXES), rng.choice(MIDS), rng.randint(1, 99), rng.choice(SUFFIXES))


def rand_ipv4(rng):
    return "%s.%d" % (rng.choice(["192.0.2", "198.51.100", "203.0.113"]), rng.randint(1, 254))


def rand_ipv6(rng):
    return "2001:db8:%x:%x::%x" % (rng.randint(1, 0xffff), rng.randint(0, 0xff), rng.randint(1, 0xfff))


def rand_url(rng):
    scheme = rng.choice(["http", "https", "https"])
    host = rand_host(rng) if rng.random() < 0.8 else rand_ipv4(rng)
    path = rng.choice(PATHS)
    if path.endswith("="):
        path += hexstr(rng, 8)
    return "%s://%s/%s" % (scheme, host, path)


def rand_email(rng):
    user = rng.choice(["hr", "billing", "it-support", "no-reply", "recruiter", "press", "admin", "j.doe"])
    return "%s@%s" % (user, rand_host(rng))


# --------------------------------------------------------------------------------------------
# samples/mdti
# --------------------------------------------------------------------------------------------

def profile_texts(name, origin, focus, lures, table_rows, tool=False):
    """summary/description/tradecraft in MDTI's style (markdown, \\r\\n newlines)."""
    what = "malware family" if tool else "activity group"
    summary = ("%s is a %s %s that Microsoft tracks primarily through %s. "
               "Activity attributed to %s has been observed against %s." % (
                   name, origin, what, "telemetry and incident response" if not tool else "file and network telemetry",
                   name, focus))
    rows = [crlf("| Stage | Technique | Notes |", "|---|---|---|")]
    rows += ["| %s | %s | %s |" % r for r in table_rows]
    description = crlf(
        "## Snapshot",
        "%s is a %s %s. Microsoft has observed it targeting %s." % (name, origin, what, focus),
        "",
        "## Activity overview",
        "- Initial access typically follows %s." % lures,
        "- Operators reuse infrastructure across campaigns, often for months.",
        "- Some lures were titled \"Urgent: updated payroll schedule\" or similar.",
        "",
        "### Observed stages",
        crlf(*rows),
        "",
        "> Note: indicators below are shared for hunting; confirm before blocking.",
    )
    tradecraft = crlf(
        "## Tradecraft",
        "%s relies on the following behaviours:" % name,
        "",
        "1. Staging payloads under `C:\\ProgramData\\Microsoft\\Crypto\\` and `%APPDATA%\\Roaming\\`.",
        "2. Persistence through scheduled tasks named like legitimate updaters.",
        "3. Command and control over HTTPS with a fallback to DNS.",
        "",
        "### Hunting tips",
        "* Look for `rundll32.exe` loading DLLs from user-writable paths.",
        "* Check for the registry key `HKCU\\Software\\Classes\\CLSID\\` being modified by Office processes.",
    )
    return summary, description, tradecraft


def make_sample_profiles():
    """Returns a list of (key, profile_dict)."""
    rng = random.Random(20240601)

    def b64_id_with_specials():
        salt = 0
        while True:
            cand = base64.b64encode(hashlib.sha256(("pewter-sleet-%d" % salt).encode()).digest()[:25]).decode()
            if "/" in cand and "+" in cand and cand.endswith("="):
                return cand
            salt += 1

    profiles = []

    # 1. Aqua Blizzard: 64-hex id, RU, second-precision firstActive.
    s, d, t = profile_texts(
        "Aqua Blizzard", "Russia-based", "government, defense and humanitarian organizations in Eastern Europe",
        "spear-phishing emails carrying malicious document attachments",
        [("Delivery", "Spear-phishing attachment (T1566.001)", "Remote template injection"),
         ("Execution", "Visual Basic (T1059.005)", "VBScript droppers"),
         ("C2", "Dynamic DNS", "Fast-changing subdomains")])
    profiles.append(("aqua", {
        "@odata.type": "#" + NS + ".intelligenceProfile",
        "id": sha256hex("ctiport-sample:aqua-blizzard"),
        "kind": "actor",
        "title": "Aqua Blizzard",
        "firstActiveDateTime": "2020-02-24T00:00:00Z",
        "aliases": ["ACTINIUM", "Frosty Marten", "SectorX99", "WINTERSHADE", "UNC-AQ1"],
        "targets": ["Government Agencies & Services: Defense",
                    "Government Agencies & Services: Law Enforcement",
                    "Non-Government Organization: Human Rights Organization"],
        "countriesOrRegionsOfOrigin": [country("Russia", "RU")],
        "summary": fc(s, "text"),
        "description": fc(d),
        "tradecraft": fc(t),
    }))

    # 2. Lilac Typhoon: slug id, beta sponsorStates, millisecond firstActive.
    s, d, t = profile_texts(
        "Lilac Typhoon", "China-based", "telecommunications providers and IT software vendors",
        "exploitation of internet-facing VPN appliances",
        [("Initial access", "Exploit public-facing application (T1190)", "Edge devices, CVE-2024-3400"),
         ("Persistence", "Web shell (T1505.003)", "ASPX shells on OWA"),
         ("Exfiltration", "Archive via utility (T1560.001)", "Split RAR archives")])
    profiles.append(("lilac", {
        "@odata.type": "#" + NS + ".intelligenceProfile",
        "id": "cerium",
        "kind": "actor",
        "title": "Lilac Typhoon",
        "firstActiveDateTime": "2022-01-31T16:00:00.000Z",
        "aliases": ["CERIUM", "Storm-0931", "BronzeLantern"],
        "targets": ["Telecommunications", "IT: Software", "Government Agencies & Services: Foreign Affairs"],
        "sponsorStates": [country("China", "CN", beta=True)],
        "summary": fc(s, "text"),
        "description": fc(d),
        "tradecraft": fc(t),
    }))

    # 3. Pewter Sleet: base64-like id with '/', '+', '='.
    s, d, t = profile_texts(
        "Pewter Sleet", "North Korea-based", "cryptocurrency exchanges and banks",
        "fake recruiter messages on professional networking sites",
        [("Delivery", "Spear-phishing via service (T1566.003)", "Trojanized coding tests"),
         ("Execution", "Malicious package (T1195.001)", "npm and PyPI lookalikes"),
         ("Impact", "Financial theft", "Hot-wallet draining")])
    profiles.append(("pewter", {
        "@odata.type": "#" + NS + ".intelligenceProfile",
        "id": b64_id_with_specials(),
        "kind": "actor",
        "title": "Pewter Sleet",
        "firstActiveDateTime": "2019-06-13T17:25:22.761Z",
        "aliases": ["Sapphire Recruiter", "TA-PEW"],
        "targets": ["Financial Services: Banking", "Financial Services: Cryptocurrency", "IT: Software"],
        "countriesOrRegionsOfOrigin": [country("North Korea", "KP")],
        "summary": fc(s, "text"),
        "description": fc(d),
        "tradecraft": fc(t),
    }))

    # 4. Ochre Tempest: two countries; its indicators are NDJSON.
    s, d, t = profile_texts(
        "Ochre Tempest", "financially motivated", "hospitals, universities and oil and gas companies",
        "malvertising that leads to fake software installers",
        [("Delivery", "Malvertising (T1583.008)", "Sponsored search results"),
         ("Execution", "User execution (T1204.002)", "Signed MSI installers"),
         ("Impact", "Data encrypted for impact (T1486)", "Ransomware affiliate")])
    profiles.append(("ochre", {
        "@odata.type": "#" + NS + ".intelligenceProfile",
        "id": sha256hex("ctiport-sample:ochre-tempest"),
        "kind": "actor",
        "title": "Ochre Tempest",
        "firstActiveDateTime": "2021-08-09T00:00:00.000Z",
        "aliases": ["Storm-1311", "OCHRE SPIDER"],
        "targets": ["Healthcare: Hospitals", "Education: Higher Education", "Energy: Oil and Gas",
                    "Manufacturing: Industrial Machinery"],
        "countriesOrRegionsOfOrigin": [country("Brazil", "BR"), country("Portugal", "PT")],
        "summary": fc(s, "text"),
        "description": fc(d),
        "tradecraft": fc(t),
    }))

    # 5. Storm-2187: developing group, no country, null firstActive.
    s, d, t = profile_texts(
        "Storm-2187", "newly identified", "non-government organizations and think tanks",
        "password spraying against cloud identities",
        [("Credential access", "Password spraying (T1110.003)", "Residential proxies"),
         ("Collection", "Email collection (T1114.002)", "Mailbox rules")])
    profiles.append(("storm", {
        "@odata.type": "#" + NS + ".intelligenceProfile",
        "id": sha256hex("ctiport-sample:storm-2187"),
        "kind": "actor",
        "title": "Storm-2187",
        "firstActiveDateTime": None,
        "aliases": [],
        "targets": ["Non-Government Organization: Think Tanks", "Non-Government Organization: Human Rights Organization"],
        "countriesOrRegionsOfOrigin": [],
        "summary": fc(s, "text"),
        "description": fc(d),
        "tradecraft": fc(t),
    }))

    # 6-8. Tools.
    s, d, t = profile_texts(
        "DriftLoader", "modular", "victims of several ransomware affiliates",
        "search-engine poisoning and cracked-software downloads",
        [("Loader", "DLL side-loading (T1574.002)", "Signed host binaries"),
         ("Payload", "Process injection (T1055)", "Hollowed msbuild.exe")], tool=True)
    profiles.append(("drift", {
        "@odata.type": "#" + NS + ".intelligenceProfile",
        "id": sha256hex("ctiport-sample:driftloader"),
        "kind": "tool",
        "title": "DriftLoader",
        "firstActiveDateTime": "2022-05-02T23:09:20.000Z",
        "aliases": ["DRIFTLDR", "Drift Loader"],
        "targets": ["IT: Software", "Retail: E-commerce"],
        "countriesOrRegionsOfOrigin": [],
        "summary": fc(s, "text"),
        "description": fc(d),
        "tradecraft": fc(t),
    }))

    s, d, t = profile_texts(
        "Spectral RAT", "remote access trojan (RAT)", "energy and telecommunications operators",
        "phishing links to password-protected archives",
        [("C2", "Web protocols (T1071.001)", "JARM-fingerprinted panels"),
         ("Discovery", "System information discovery (T1082)", "WMI queries")], tool=True)
    profiles.append(("spectral", {
        "@odata.type": "#" + NS + ".intelligenceProfile",
        "id": sha256hex("ctiport-sample:spectral-rat"),
        "kind": "tool",
        "title": "Spectral RAT",
        "firstActiveDateTime": "2018-11-20T08:00:00Z",
        "aliases": ["SpecRAT"],
        "targets": ["Energy: Electric Utilities", "Telecommunications"],
        "countriesOrRegionsOfOrigin": [],
        "summary": fc(s, "text"),
        "description": fc(d),
        "tradecraft": fc(t),
    }))

    s, d, t = profile_texts(
        "Kestrel Stealer", "commodity information-stealing", "home users and small businesses",
        "malicious browser extensions",
        [("Collection", "Credentials from web browsers (T1555.003)", "Chromium and Firefox"),
         ("Exfiltration", "Exfiltration over web service (T1567)", "Chat-app webhooks")], tool=True)
    profiles.append(("kestrel", {
        "@odata.type": "#" + NS + ".intelligenceProfile",
        "id": sha256hex("ctiport-sample:kestrel-stealer"),
        "kind": "tool",
        "title": "Kestrel Stealer",
        "firstActiveDateTime": "2023-03-07T13:59:34.735Z",
        "aliases": ["KStealer"],
        "targets": ["Consumer", "Small Business"],
        "countriesOrRegionsOfOrigin": [],
        "summary": fc(s, "text"),
        "description": fc(d),
        "tradecraft": fc(t),
    }))
    return profiles


# Values that must appear in several profiles (cross-profile duplicates).
DUP_HOST = "update-check.example.net"
DUP_IP = "198.51.100.23"
DUP_SHA256 = sha256hex("ctiport-sample:dup-sha256")
IDN_UNICODE = "münchen-update.example"
IDN_PUNY = IDN_UNICODE.encode("idna").decode("ascii")   # xn--mnchen-update-wob.example


def sample_specials(pids):
    """Hand-picked tricky records per profile key: list of (artifact-or-marker, source, first, last, id_form)."""
    H = lambda v, ot=None: stub("hostname", v, ot)   # noqa: E731
    IP = lambda v, ot=None: stub("ipAddress", v, ot)  # noqa: E731
    U = unclassified
    sha1_up = hashlib.sha1(b"ctiport-sample:cert-upper").hexdigest().upper()
    sha1_colon = ":".join(hashlib.sha1(b"ctiport-sample:cert-colon").hexdigest()[i:i + 2] for i in range(0, 40, 2))
    return {
        "aqua": [
            (H("EVIL.Example.COM"), "microsoft", "2022-05-02T23:09:20.000Z", None),
            (H(DUP_HOST), "microsoft", "2021-03-02T10:15:00Z", "2023-01-10T00:00:00Z"),
            (H("portal-gov-mail.example.org", "#Microsoft.Graph.Security.HostName"), "microsoft", "2021-04-11T07:30:00.000Z", None),
            (H("docs-share.example.com", NS + ".hostname"), "osint", "2021-05-19T12:00:00Z", None),
            (H("cdn-sync.example.org"), "microsoft", "2021-02-28T00:00:19.644Z", "2023-03-06T23:58:55.615Z"),
            (IP(DUP_IP), "microsoftDefenderThreatIntelligence", "2020-12-01T00:00:00Z", None),
            (IP("2001:db8:4f::23"), "microsoft", "2022-09-14T04:05:06.007Z", None),
            (IP("203.0.113.0/24"), "public", "2022-02-26T07:23:34.558Z", None),
            (stub("sslCertificate", sha1_up), "microsoft", "2022-07-30T09:43:19Z", None),
            (stub("hostComponent", b64("Microsoft-IIS$$10.0$$Server$$c1.update-check.example.net")), "microsoft",
             "2023-02-28T00:00:19.644Z", "2023-03-06T23:58:55.615Z"),
            (U("url", "http://docs-share.example.com/it's-your-invoice.doc"), "microsoft", "2022-03-03T18:20:22.677Z", None),
            (U("md5", hashlib.md5(b"ctiport-sample:md5-upper").hexdigest().upper()), "osint", "2021-06-01T00:00:00Z", None),
            (U("sha256", DUP_SHA256), "microsoft", "2021-09-09T09:09:09Z", None),
        ],
        "lilac": [
            (H("evil.example.net."), "microsoft", "2022-06-06T06:06:06.000Z", None),
            (H(IDN_UNICODE), "osint", "2022-11-11T11:11:11Z", None),
            (H("owa-mail.example.com"), "openSourceIntelligence", "2020-10-10T10:10:10Z", "2021-10-10T10:10:10Z"),
            (IP("2001:db8:abcd::/48"), "microsoft", "2023-01-05T00:00:00.000Z", None),
            (IP("192.0.2.44", NS + ".ipAddress"), "microsoft", "2022-12-24T23:59:59.999Z", None),
            (stub("hostCookie", b64("owa-mail.example.com$$OIDC$$owa-mail.example.com")), "microsoft",
             "2022-02-26T07:23:34.558Z", "2023-02-28T04:57:15.288Z"),
            (stub("hostTracker", b64("UA-12345678-9$$GoogleAnalyticsID$$owa-mail.example.com")), "microsoft",
             "2019-06-13T17:25:22.761Z", "2023-03-25T23:59:32.157Z"),
            (U("Url", "https://owa-mail.example.com/owa\\auth\\logon.aspx"), "microsoft", "2022-08-08T08:08:08Z", None),
            (U("sha512", hashlib.sha512(b"ctiport-sample:sha512").hexdigest()), "microsoft", "2022-04-01T00:00:00Z", None),
            (U("email", "it-helpdesk@owa-mail.example.com"), "osint", "2022-01-01T00:00:00.000Z", None),
            (U("sha256", DUP_SHA256), "osint", "2022-02-14T14:00:00.000Z", None),
        ],
        "pewter": [
            (H(DUP_HOST), "openSourceIntelligence", "2023-04-04T04:04:04.400Z", None),
            (H(IDN_PUNY), "microsoft", "2023-01-15T15:15:15Z", None),
            (H("recruit-portal.example.com"), "microsoft", "2022-10-01T00:00:00Z", None),
            (U("url", "https://recruit-portal.example.com/o'brien\\cv.zip"), "microsoft", "2023-02-02T02:02:02.020Z", None),
            (U("url", "http://[2001:db8::1]/x"), "microsoft", "2023-02-03T00:00:00Z", None),
            (U("url", "https://recruit-portal.example.com/apply?job=dev&ref=li#section-2"), "osint", "2023-02-04T00:00:00Z", None),
            (stub("hostSslCertificate", b64("recruit-portal.example.com$$" + sha1_colon.replace(":", ""))), "microsoft",
             "2022-10-02T00:00:00.000Z", None),
            (stub("passiveDnsRecord", b64("recruit-portal.example.com$$203.0.113.77$$false")), "microsoft",
             "2022-04-18T10:31:12Z", "2023-03-07T13:19:35Z"),
            (stub("sslCertificate", sha1_colon), "microsoft", "2022-10-03T00:00:00Z", None),
            (U("emailAddress", "talent.acquisition@recruit-portal.example.com"), "microsoftDefenderThreatIntelligence",
             "2022-09-30T00:00:00Z", None),
            (U("fileHash", hashlib.sha1(b"ctiport-sample:filehash-sha1").hexdigest()), "microsoft", "2023-01-20T00:00:00Z", None),
        ],
        "ochre": [
            (IP(DUP_IP), "osint", "2023-05-05T12:00:00.500Z", "2023-06-01T00:00:00Z"),
            (H("evil.example.com"), "microsoft", "2023-01-01T00:00:00Z", None),
            (U("url", "https://dl-installer.example.net/setup.msi?campaign=q3&utm_source=ads#download"), "microsoft",
             "2023-07-07T07:07:07.070Z", None),
            (U("domain", "dl-installer.example.net"), "osint", "2023-07-01T00:00:00Z", None),
            (U("observableValue", "https://dl-installer.example.net/stage2/payload.bin"), "microsoft",
             "2023-07-08T00:00:00Z", None),
            (U("observableValue", hashlib.sha256(b"ctiport-sample:sniff").hexdigest()), "microsoft",
             "2023-07-09T00:00:00Z", None),
            (U("sha1", hashlib.sha1(b"ctiport-sample:sha1-upper").hexdigest().upper()), "public", "2023-06-06T00:00:00Z", None),
            ("BAD_UNKNOWN_TYPE", "microsoft", "2023-08-01T00:00:00Z", None),
        ],
        "storm": [
            (H(DUP_HOST, "#" + NS + ".hostName"), "microsoft", "2024-01-02T03:04:05.0600000Z", None),
            (IP("203.0.113.45"), "microsoft", "2024-01-10T00:00:00Z", None),
            ("BAD_EMPTY_ARTIFACT", "microsoft", "2024-01-11T00:00:00Z", None),
            ("BAD_NO_ARTIFACT", "osint", "2024-01-12T00:00:00Z", None),
            ("BAD_IP", "microsoft", "2024-01-13T00:00:00Z", None),
        ],
        "drift": [
            (U("sha256", DUP_SHA256), "microsoft", "2022-05-02T23:09:20.000Z", None),
            (U("SHA256", hashlib.sha256(b"ctiport-sample:sha256-upper").hexdigest().upper()), "microsoft",
             "2022-06-01T00:00:00Z", None),
            (U("url", "http://drift-cdn.example.org/load?id=1&k=%27x%27"), "osint", "2022-06-02T00:00:00Z", None),
        ],
        "spectral": [
            (IP("203.0.113.77"), "microsoft", "2019-01-01T00:00:00Z", "2023-12-31T23:59:59Z"),
            (stub("hostTracker", b64("2ad2ad16d2ad2ad22c42d42d00042d58c7$$JarmHash$$203.0.113.77")), "microsoft",
             "2021-01-01T00:00:00Z", None),
            (IP("2001:db8:77::/64"), "microsoft", "2021-02-01T00:00:00Z", None),
        ],
    }


def make_sample_indicators(profiles):
    rng = random.Random(1337)
    pids = {k: p["id"] for k, p in profiles}
    specials = sample_specials(pids)
    # target totals per profile (including specials and malformed records)
    totals = {"aqua": 85, "lilac": 70, "pewter": 60, "ochre": 60, "storm": 30, "drift": 50, "spectral": 45}
    sources = (["microsoft"] * 11 + ["osint"] * 4 + ["public"] * 2 +
               ["microsoftDefenderThreatIntelligence"] * 2 + ["openSourceIntelligence"])
    actor_mix = [("host", 34), ("ipv4", 14), ("ipv6", 3), ("url", 16), ("md5", 4), ("sha1", 4),
                 ("sha256", 8), ("email", 3), ("ssl", 3), ("component", 2), ("cookie", 2), ("tracker", 2),
                 ("hostssl", 2), ("pdns", 3)]
    tool_mix = [("host", 12), ("ipv4", 14), ("ipv6", 1), ("url", 14), ("md5", 10), ("sha1", 8),
                ("sha256", 28), ("sha512", 2), ("filehash", 3), ("ssl", 3), ("component", 1), ("tracker", 2),
                ("hostssl", 1), ("pdns", 1)]
    seen_values = set()
    for lst in specials.values():
        for art, _, _, _ in lst:
            if isinstance(art, dict):
                seen_values.add(json.dumps(art, sort_keys=True))
                seen_values.add(json.dumps(stub("ipAddress", art.get("id")), sort_keys=True))
                seen_values.add(json.dumps(stub("hostname", art.get("id")), sort_keys=True))

    def pick(mix):
        r = rng.uniform(0, sum(w for _, w in mix))
        for name, w in mix:
            r -= w
            if r <= 0:
                return name
        return mix[-1][0]

    def filler(kind):
        if kind == "host":
            return stub("hostname", rand_host(rng))
        if kind == "ipv4":
            return stub("ipAddress", rand_ipv4(rng))
        if kind == "ipv6":
            return stub("ipAddress", rand_ipv6(rng))
        if kind == "url":
            return unclassified(rng.choice(["url"] * 5 + ["Url"]), rand_url(rng), with_id=rng.random() < 0.1)
        if kind in ("md5", "sha1", "sha256", "sha512"):
            n = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}[kind]
            v = hexstr(rng, n)
            if rng.random() < 0.15:
                v = v.upper()
            return unclassified(kind, v, with_id=rng.random() < 0.1)
        if kind == "filehash":
            return unclassified("fileHash", hexstr(rng, rng.choice([32, 40, 64])))
        if kind == "email":
            return unclassified(rng.choice(["email", "emailAddress"]), rand_email(rng))
        if kind == "ssl":
            v = hexstr(rng, 40)
            return stub("sslCertificate", v.upper() if rng.random() < 0.3 else v)
        h = rand_host(rng)
        if kind == "component":
            n, ver, cat = rng.choice(SERVERS)
            return stub("hostComponent", b64("%s$$%s$$%s$$%s" % (n, ver, cat, h)))
        if kind == "cookie":
            c = rng.choice(COOKIES)
            return stub("hostCookie", b64("%s$$%s$$%s" % (h, c, h)))
        if kind == "tracker":
            tk = rng.choice(TRACKERS)
            return stub("hostTracker", b64("%s$$%s$$%s" % (hexstr(rng, 16), tk, h)))
        if kind == "hostssl":
            return stub("hostSslCertificate", b64("%s$$%s" % (h, hexstr(rng, 40))))
        if kind == "pdns":
            return stub("passiveDnsRecord", b64("%s$$%s$$%s" % (h, rand_ipv4(rng), rng.choice(["false", "true"]))))
        raise ValueError(kind)

    def art_key(a):
        return json.dumps(a, sort_keys=True)

    def new_id(title, art):
        if rng.random() < 0.75:
            return guid(rng)
        return b64_padded("%s$$%s$$%s" % (title, art.get("id") or art.get("value"), hexstr(rng, 4)))

    out = {}
    malformed = []
    for key, prof in profiles:
        if key not in totals:
            continue
        mix = tool_mix if prof["kind"] == "tool" else actor_mix
        entries = []
        for art, src, first, last in specials.get(key, []):
            entries.append((art, src, first, last))
        while len(entries) < totals[key]:
            art = filler(pick(mix))
            k = art_key(art)
            if k in seen_values:
                continue
            seen_values.add(k)
            first = rand_dt(rng, 2019, 2024)
            last = later_dt(rng, first) if rng.random() < 0.35 else None
            entries.append((art, rng.choice(sources), first, last))
        # deterministic shuffle so specials are spread through the file
        rng.shuffle(entries)
        recs = []
        for art, src, first, last in entries:
            if art == "BAD_UNKNOWN_TYPE":
                iid = guid(rng)
                recs.append(indicator(iid, src, first, last, {"@odata.type": "#" + NS + ".futureArtifactType",
                                                              "id": "opaque-future-value-1"}))
                malformed.append({"id": iid, "record": "indicator", "reason_contains": "unknown artifact type"})
            elif art == "BAD_EMPTY_ARTIFACT":
                iid = guid(rng)
                recs.append(indicator(iid, src, first, last, {}))
                malformed.append({"id": iid, "record": "indicator", "reason_contains": "artifact"})
            elif art == "BAD_NO_ARTIFACT":
                iid = guid(rng)
                recs.append(indicator(iid, src, first, last))
                malformed.append({"id": iid, "record": "indicator", "reason_contains": "artifact"})
            elif art == "BAD_IP":
                iid = guid(rng)
                recs.append(indicator(iid, src, first, last, stub("ipAddress", "999.1.2.3")))
                malformed.append({"id": iid, "record": "indicator", "reason_contains": "ip"})
            else:
                recs.append(indicator(new_id(prof["title"], art), src, first, last, art))
        out[key] = recs
    return out, malformed


def sample_hosts():
    hosts = {
        DUP_HOST: {
            "@odata.context": GRAPH + "/$metadata#security/threatIntelligence/hosts/$entity",
            "@odata.type": "#" + NS + ".hostname",
            "id": DUP_HOST,
            "firstSeenDateTime": "2020-11-30T21:14:02.000Z",
            "lastSeenDateTime": "2024-02-01T08:00:00.000Z",
            "registrar": "Example Registrar, LLC",
            "registrant": "REDACTED FOR PRIVACY",
        },
        # beta doc quirk: single entity wrapped in {"value": {...}}
        "cdn-sync.example.org": {"value": {
            "@odata.type": "#" + NS + ".hostname",
            "id": "cdn-sync.example.org",
            "firstSeenDateTime": "2021-02-27T00:00:00Z",
            "lastSeenDateTime": None,
            "registrar": "Fictional Names Registry Inc.",
            "registrant": None,
        }},
        DUP_IP: {
            "@odata.type": "#" + NS + ".ipAddress",
            "id": DUP_IP,
            "firstSeenDateTime": "2020-06-01T00:00:00Z",
            "lastSeenDateTime": "2023-06-01T12:30:00.123Z",
            "autonomousSystem": {"name": "EXAMPLE-TRANSIT", "number": 64496,
                                 "organization": "Example Transit Networks", "value": "AS64496"},
            "countryOrRegion": "NL",
            "hostingProvider": "Example Hosting B.V.",
            "netblock": "198.51.100.0/24",
        },
        "203.0.113.77": {
            "@odata.type": "#" + NS + ".ipAddress",
            "id": "203.0.113.77",
            "firstSeenDateTime": "2018-12-30T00:00:00.000Z",
            "lastSeenDateTime": None,
            "autonomousSystem": {"name": "DOC-NET-3", "number": 64511,
                                 "organization": "Documentation Net Three", "value": "AS64511"},
            "countryOrRegion": "SG",
            "hostingProvider": None,
            "netblock": "203.0.113.0/24",
        },
        "2001:db8:4f::23": {
            "@odata.type": "#" + NS + ".ipAddress",
            "id": "2001:db8:4f::23",
            "firstSeenDateTime": "2022-09-01T00:00:00Z",
            "lastSeenDateTime": "2022-12-01T00:00:00Z",
            "autonomousSystem": {"name": "V6-EXAMPLE", "number": 65550,
                                 "organization": "IPv6 Example Cooperative", "value": "AS65550"},
            "countryOrRegion": "DE",
            "hostingProvider": "Example Cloud GmbH",
            "netblock": "2001:db8:4f::/48",
        },
    }
    reps = {
        DUP_HOST: {
            "@odata.type": "#" + NS + ".hostReputation",
            "id": "6f1c2a90-3b4d-4e5f-8a7b-0c1d2e3f4a5b",
            "classification": "malicious",
            "score": 100,
            "rules": [
                {"name": "Microsoft Defender Threat Intelligence Intel Article",
                 "description": "Activity Profile: Aqua Blizzard reuses update-themed domains",
                 "severity": "high", "relatedDetailsUrl": "https://ti.defender.microsoft.com/article/0a1b2c3d"},
                {"name": "Registrar",
                 "description": "Domains registered with this registrar are often linked to suspicious activity",
                 "severity": "medium", "relatedDetailsUrl": None},
                {"name": "Resolving IP Address", "description": DUP_IP, "severity": "low",
                 "relatedDetailsUrl": "https://ti.defender.microsoft.com/search?query=" + DUP_IP},
            ],
        },
        "cdn-sync.example.org": {
            "@odata.type": "#" + NS + ".hostReputation",
            "id": "0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a",
            "classification": "suspicious",
            "score": 65,
            "rules": [
                {"name": "Name server",
                 "description": "Domain uses a name server associated with suspicious infrastructure",
                 "severity": "medium", "relatedDetailsUrl": None},
            ],
        },
        # older shape: rule URL field named "link"
        DUP_IP: {
            "@odata.type": "#" + NS + ".hostReputation",
            "id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
            "classification": "malicious",
            "score": 88,
            "rules": [
                {"name": "Microsoft Defender Threat Intelligence Intel Article",
                 "description": "Ochre Tempest installer infrastructure", "severity": "high",
                 "link": "https://ti.defender.microsoft.com/article/9f8e7d6c"},
            ],
        },
        "203.0.113.77": {
            "@odata.type": "#" + NS + ".hostReputation",
            "id": "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c",
            "classification": "neutral",
            "score": 10,
            "rules": [],
        },
        "2001:db8:4f::23": {
            "@odata.type": "#" + NS + ".hostReputation",
            "id": "00000000-0000-4000-8000-000000000023",
            "classification": "unknown",
            "score": 0,
            "rules": [],
        },
    }
    return hosts, reps


# --------------------------------------------------------------------------------------------
# samples/mdti: articles, their indicators, vulnerabilities (issue 13 layout, docs/contracts.md)
# --------------------------------------------------------------------------------------------
#
# Article ids are 8-hex like MDTI's; two are the ids the sample reputation rules link to. Article
# indicator ids are base64 of the value, as in the Graph docs (ZmFrZS1tYWxpY2lvdXMuc2l0ZQ== is
# "fake-malicious.site"), so a value listed by two articles has one id. The CVE ids are real; the
# vulnerability records paraphrase public advisories and are illustrative, not authoritative.

TECHNIQUE_RE = re.compile(r"\bT[0-9]{4}(?:\.[0-9]{3})?\b")
CVE_RE = re.compile(r"\bCVE-[0-9]{4}-[0-9]{4,}\b")

# Technique ids in the samples that a resolver must not simply look up (ATT&CK Enterprise v18.1;
# tests/fixtures/attack/expected.json has the resolved ids).
TECHNIQUE_NOTES = {
    "T1574.002": "revoked, revoked-by T1574.001",
    "T1073": "revoked, revoked-by T1574.002, itself revoked-by T1574.001",
    "T1193": "revoked, revoked-by T1566.001",
    "T1086": "revoked, revoked-by T1059.001",
    "T1064": "deprecated, no replacement",
    "T1059.099": "not in ATT&CK",
}
CVE_NOT_FOUND = "CVE-2026-31337"


def articles_context():
    return GRAPH + "/$metadata#security/threatIntelligence/articles"


def article_indicators_context(aid):
    return GRAPH + "/$metadata#security/threatIntelligence/articles('%s')/indicators" % aid


def artifact_value(artifact):
    """What an artifact stub names: its id, or an unclassifiedArtifact's value."""
    return artifact.get("id") or artifact.get("value")


def article_indicator(source, artifact="__absent__", iid=None):
    """An articleIndicator: id, source, artifact; unlike profile indicators, no first/last seen."""
    rec = {"@odata.type": "#" + NS + ".articleIndicator", "id": iid or b64(artifact_value(artifact)), "source": source}
    if artifact != "__absent__":
        rec["artifact"] = artifact
    return rec


def article(aid, title, summary, body, created, updated, tags, featured=False, image=None, doc_shape=False):
    """doc_shape: as in the list-articles docs, a per-element @odata.context, no @odata.type anywhere."""
    content = (lambda text: {"content": text, "format": "markdown"}) if doc_shape else fc
    rec = {"@odata.context": "$metadata#articles/$entity"} if doc_shape else {"@odata.type": "#" + NS + ".article"}
    if aid is not None:
        rec["id"] = aid
    rec.update({
        "createdDateTime": created,
        "lastUpdatedDateTime": updated,
        "title": title,
        "summary": content(summary),
        "isFeatured": featured,
        "body": content(body),
        "tags": tags,
        "imageUrl": image,
    })
    return rec


def article_body(description, analysis, *more):
    """MDTI's article layout: Description, Analysis (a table or a list), then any further paragraphs."""
    return crlf("#### Description", description, "", "#### Analysis", analysis, *(("",) + more if more else ()))


def technique_table(*rows):
    return crlf("| Tactic | Technique | Observed |", "|---|---|---|", *("| %s | %s | %s |" % r for r in rows))


def sample_articles():
    """(article, indicator records or None, file form) in listing order: newest update first."""
    H = lambda v, ot=None: stub("hostname", v, ot)   # noqa: E731
    IP = lambda v, ot=None: stub("ipAddress", v, ot)  # noqa: E731
    U = unclassified
    sha = lambda label: sha256hex("ctiport-sample:article:" + label)  # noqa: E731
    md5 = lambda label: hashlib.md5(("ctiport-sample:article:" + label).encode()).hexdigest()  # noqa: E731
    out = []

    body = article_body(
        "Lilac Typhoon has resumed mass exploitation of internet-facing VPN and mail gateways. Microsoft "
        "observed exploitation of CVE-2024-3400 in PAN-OS GlobalProtect gateways within days of disclosure, "
        "and of the Exchange Server chain CVE-2022-41040 and CVE-2022-41082 (\"ProxyNotShell\") on servers "
        "that were never patched.",
        technique_table(
            ("Initial access", "Exploit Public-Facing Application (T1190)", "GlobalProtect, OWA"),
            ("Initial access", "External Remote Services (T1133)", "Stolen VPN credentials"),
            ("Persistence", "Web Shell (T1505.003)", "ASPX shells under `\\owa\\auth\\`"),
            ("Execution", "PowerShell (T1086)", "Encoded commands, per older public reporting"),
            ("Credential access", "LSASS Memory (T1003.001)", "comsvcs.dll MiniDump"),
            ("Collection", "Archive via Utility (T1560.001)", "Split RAR archives")),
        "#### Recommendations",
        "- Apply the vendor fixes for CVE-2024-3400 and CVE-2022-41082; rotate credentials on affected gateways.",
        "- Hunt for new `.aspx` files under `C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\`.",
    )
    out.append((article(
        "4e5f6a7b", "Lilac Typhoon returns to edge-device exploitation",
        "Lilac Typhoon is exploiting VPN gateways and unpatched Exchange servers to reach telecommunications "
        "providers.", body, "2024-04-16T20:41:07.913Z", "2024-05-02T11:22:33.120Z",
        ["Lilac Typhoon", "CERIUM", "CVE-2024-3400", "CVE-2022-41040", "CVE-2022-41082", "WebShell",
         "Telecommunications"], doc_shape=True), [
        article_indicator("microsoft", H("owa-mail.example.com")),
        article_indicator("microsoft", IP("192.0.2.44")),
        article_indicator("microsoft", IP("203.0.113.88")),
        "BAD_LINE",
        article_indicator("microsoft", U("url", "https://owa-mail.example.com/owa/auth/errorEE.aspx")),
        article_indicator("microsoft", U("sha256", sha("lilac-webshell"))),
        article_indicator("public", H("vpn-gw-update.example.net")),
    ], "ndjson"))

    body = article_body(
        "Since CVE-2021-44228 (Log4Shell) was disclosed in December 2021, commodity operators have kept scanning "
        "for vulnerable Log4j 2 deployments. This roundup collects open-source reporting on loaders and coin miners delivered "
        "through it, including Kestrel Stealer.",
        crlf("- Exploit Public-Facing Application (T1190) through JNDI lookups in HTTP headers.",
             "- Unix Shell (T1059.004) one-liners fetch the second stage (Ingress Tool Transfer, T1105).",
             "- Older write-ups still label the Windows stage as Scripting (T1064).",
             "- One vendor describes a \"T1059.099\" technique; ATT&CK has no such sub-technique.",
             "- Payloads end in Resource Hijacking (T1496)."),
        "A vendor also tracks a related, still-embargoed issue as %s; no details are public." % CVE_NOT_FOUND,
    )
    out.append((article(
        "c0ffee42", "OSINT roundup: Log4Shell still feeds loaders and miners",
        "Open-source reporting on continued exploitation of Log4j 2 (CVE-2021-44228).", body,
        "2021-12-11T03:00:00.000Z", "2024-01-09T17:45:00.000Z",
        ["OSINT", "Log4j", "CVE-2021-44228", "Kestrel Stealer", "Cryptomining"], featured=True,
        image="https://ti.defender.microsoft.com/static/articles/c0ffee42.png"), [
        article_indicator("osint", IP("203.0.113.77")),
        article_indicator("osint", U("url", "http://203.0.113.77:8080/Exploit.class")),
        article_indicator("osint", {"@odata.type": "#" + NS + ".futureArtifactType", "id": "opaque-future-value-2"},
                          iid="b3BhcXVlLWZ1dHVyZS12YWx1ZS0y"),
        article_indicator("osint", H("pool-mine.example.org")),
        article_indicator("osint", iid="bWlzc2luZy1hcnRpZmFjdA=="),
        article_indicator("osint", U("sha256", sha("log4shell-miner"))),
    ], "json"))

    out.append((article(
        None, "Weekly activity digest (draft)", "Draft digest without an id.",
        crlf("#### Description", "Mentions Exploit Public-Facing Application (T1190)."),
        "2023-11-20T10:00:00Z", "2023-11-20T10:00:00Z", ["Digest"]), None, None))

    body = article_body(
        "Ochre Tempest buys sponsored search results that lead to fake installers for popular software. The "
        "signed MSI packages side-load DriftLoader, which later deploys ransomware.",
        technique_table(
            ("Resource development", "Malvertising (T1583.008)", "Sponsored results"),
            ("Execution", "Malicious File (T1204.002)", "Signed MSI installers"),
            ("Defense evasion", "DLL Side-Loading (T1574.002)", "Signed host binaries"),
            ("Defense evasion", "DLL Side-Loading (T1073)", "as named in the 2019 report"),
            ("Defense evasion", "Process Hollowing (T1055.012)", "msbuild.exe"),
            ("Impact", "Data Encrypted for Impact (T1486)", "Affiliate ransomware"),
            ("Impact", "Inhibit System Recovery (T1490)", "vssadmin delete shadows")),
    )
    out.append((article(
        "9f8e7d6c", "Ochre Tempest installer infrastructure",
        "Malvertising campaigns deliver DriftLoader through signed MSI installers.", body,
        "2023-08-15T12:00:00Z", "2023-08-15T12:00:00Z",
        ["Ochre Tempest", "DriftLoader", "Ransomware", "Malvertising", "MSI"]), [
        article_indicator("microsoft", H("dl-installer.example.net")),
        article_indicator("microsoft", U("url", "https://dl-installer.example.net/setup.msi?campaign=q3&utm_source=ads#download")),
        article_indicator("microsoft", IP(DUP_IP)),
        article_indicator("microsoft", H("ads-redirect.example.com")),
        article_indicator("microsoft", U("sha256", sha("ochre-msi"))),
        article_indicator("microsoft", U("md5", md5("ochre-dll"))),
    ], "json"))

    body = article_body(
        "Pewter Sleet contacts developers through fake recruiter profiles and sends coding tests that pull a "
        "malicious package.",
        crlf("- Spearphishing via Service (T1566.003) on professional networking sites.",
             "- Compromise Software Dependencies and Development Tools (T1195.001).",
             "- Malicious File (T1204.002) when the candidate runs the test."),
    )
    out.append((article(
        "7d1e2f30", "Pewter Sleet fake recruiters target developers",
        "Trojanized coding tests delivered through recruiter personas.", body,
        "2023-06-01T08:30:00Z", "2023-06-01T08:30:00Z", ["Pewter Sleet", "Cryptocurrency", "SocialEngineering"]),
        None, None))

    body = article_body(
        "Aqua Blizzard continues to send spear-phishing emails to government and humanitarian organizations in "
        "Eastern Europe, reusing update-themed domains for months. Some messages exploited CVE-2023-23397 in "
        "Outlook to leak NTLM hashes without user interaction.",
        technique_table(
            ("Initial access", "Spearphishing Attachment (T1566.001)", "Remote template injection"),
            ("Initial access", "Spearphishing Attachment (T1193)", "as cited in earlier reporting"),
            ("Execution", "Malicious File (T1204.002)", "Macro documents"),
            ("Execution", "Visual Basic (T1059.005)", "VBScript droppers"),
            ("Command and control", "Web Protocols (T1071.001)", "HTTPS beacons")),
        "Infrastructure: update-check[.]example[.]net, gov-notice-update[.]example[.]org.",
    )
    out.append((article(
        "0a1b2c3d", "Aqua Blizzard reuses update-themed domains",
        "Spear-phishing against Eastern European governments, with Outlook NTLM leaks.", body,
        "2023-03-21T16:05:12.482Z", "2023-04-02T09:10:00.000Z",
        ["Aqua Blizzard", "ACTINIUM", "CVE-2023-23397", "Government", "Phishing"]), [
        article_indicator("microsoft", H(DUP_HOST)),
        article_indicator("microsoft", IP(DUP_IP)),
        article_indicator("microsoft", H("portal-gov-mail.example.org")),
        article_indicator("microsoft", H("gov-notice-update.example.org")),
        article_indicator("microsoft", U("url", "https://gov-notice-update.example.org/doc/payroll-2023.docx")),
        article_indicator("microsoft", U("sha256", DUP_SHA256)),
        article_indicator("microsoft", U("sha256", sha("aqua-lure"))),
        article_indicator("osint", IP("192.0.2.201")),
    ], "json"))
    return out


def hyperlink(name, url):
    return {"@odata.type": NS + ".hyperlink", "name": name, "url": url}


def cvss(score, severity, vector):
    return {"@odata.type": NS + ".cvssSummary", "score": score, "severity": severity, "vectorString": vector}


def vulnerability(cve, published, created, modified, description, remediation, priority, severity, cwes,
                  cvss2, cvss3, exploits, references, active=True):
    return {
        "@odata.type": "#" + NS + ".vulnerability",
        "id": cve,
        "createdDateTime": created,
        "lastModifiedDateTime": modified,
        "publishedDateTime": published,
        "description": fc(description),
        "remediation": fc(remediation),
        "priorityScore": priority,
        "severity": severity,
        "commonWeaknessEnumerationIds": cwes,
        "cvss2Summary": cvss2,
        "cvss3Summary": cvss3,
        "hasChatter": True,
        "exploitsAvailable": bool(exploits) or active,
        "activeExploitsObserved": active,
        "exploits": exploits,
        "references": references,
    }


def sample_vulnerabilities():
    """CVE -> (vulnerability entity, component names or None for no components file)."""
    nvd = lambda cve: hyperlink(cve, "https://nvd.nist.gov/vuln/detail/" + cve)  # noqa: E731
    msrc = lambda cve: hyperlink("Microsoft Security Response Center: " + cve,  # noqa: E731
                                 "https://msrc.microsoft.com/update-guide/vulnerability/" + cve)
    exchange = ["Microsoft Exchange Server 2016", "Microsoft Exchange Server 2019"]
    return {
        "CVE-2021-44228": (vulnerability(
            "CVE-2021-44228", "2021-12-10T18:15:00.000Z", "2021-11-27T13:18:28.240Z", "2023-02-06T18:53:00.000Z",
            "Apache Log4j2 2.0-beta9 through 2.15.0 (excluding 2.12.2, 2.12.3 and 2.3.1) let an attacker who "
            "controls log messages load and run code from an LDAP server through JNDI lookups.",
            crlf("##### Upgrade Apache Log4j", "Upgrade to 2.17.1 (Java 8), 2.12.4 (Java 7) or 2.3.2 (Java 6)."),
            100, "critical", ["CWE-20", "CWE-400", "CWE-502"],
            cvss(9.3, "high", "AV:N/AC:M/Au:N/C:C/I:C/A:C"),
            cvss(10.0, "critical", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"),
            [hyperlink("http://packetstormsecurity.com/files/165225/Apache-Log4j2-2.14.1-Remote-Code-Execution.html",
                       "http://packetstormsecurity.com/files/165225/Apache-Log4j2-2.14.1-Remote-Code-Execution.html")],
            [hyperlink("Apache Log4j Security Vulnerabilities", "https://logging.apache.org/log4j/2.x/security.html"),
             nvd("CVE-2021-44228")]),
            ["Apache Software Foundation Log4j 2.0", "Apache Software Foundation Log4j 2.14.1"]),
        "CVE-2023-23397": (vulnerability(
            "CVE-2023-23397", "2023-03-14T17:15:00.000Z", "2023-03-14T18:02:11.000Z", "2023-03-24T09:00:00.000Z",
            "Microsoft Outlook elevation of privilege: a crafted message makes Outlook connect to an "
            "attacker's SMB server and send the user's Net-NTLMv2 hash, before the message is opened.",
            crlf("##### Update Outlook", "Install the March 2023 security update; block outbound SMB (TCP 445)."),
            95, "critical", ["CWE-294"], None,
            cvss(9.8, "critical", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            [], [msrc("CVE-2023-23397"), nvd("CVE-2023-23397")]),
            ["Microsoft Outlook 2016", "Microsoft 365 Apps for Enterprise"]),
        "CVE-2022-41040": (vulnerability(
            "CVE-2022-41040", "2022-10-03T01:15:00.000Z", "2022-09-30T12:00:00.000Z", "2022-11-09T10:30:00.000Z",
            "Microsoft Exchange Server server-side request forgery, used with CVE-2022-41082 (\"ProxyNotShell\").",
            "Install the November 2022 Exchange Server security update.",
            88, "high", ["CWE-918"], None,
            cvss(8.8, "high", "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"),
            [], [msrc("CVE-2022-41040")]),
            exchange),
        "CVE-2022-41082": (vulnerability(
            "CVE-2022-41082", "2022-10-03T01:15:00.000Z", "2022-09-30T12:00:00.000Z", "2022-11-09T10:30:00.000Z",
            "Microsoft Exchange Server remote code execution through PowerShell remoting, reachable after "
            "CVE-2022-41040.",
            "Install the November 2022 Exchange Server security update.",
            90, "high", ["CWE-502"], None,
            cvss(8.8, "high", "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"),
            [], [msrc("CVE-2022-41082"), nvd("CVE-2022-41082")]),
            exchange),
        "CVE-2024-3400": (vulnerability(
            "CVE-2024-3400", "2024-04-12T08:15:00.000Z", "2024-04-12T09:00:00.000Z", "2024-04-19T15:20:00.000Z",
            "Command injection in the GlobalProtect feature of Palo Alto Networks PAN-OS lets an "
            "unauthenticated attacker run code as root on the firewall.",
            "Upgrade PAN-OS to a fixed release (10.2.9-h1, 11.0.4-h1, 11.1.2-h3 or later).",
            98, "critical", ["CWE-77"], None,
            cvss(10.0, "critical", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"),
            [], [hyperlink("Palo Alto Networks advisory", "https://security.paloaltonetworks.com/CVE-2024-3400")]),
            None),
    }


def component(cve, name):
    """Ids as in the list-components docs: base64 of the lower-case CVE, a number and the name."""
    number = int(sha256hex(cve + name)[:5], 16)
    return {"@odata.type": "#" + NS + ".vulnerabilityComponent", "id": b64("%s%d%s" % (cve.lower(), number, name)),
            "name": name}


def mentions(pattern, texts):
    return sorted({m for t in texts for m in pattern.findall(t or "")})


def gen_sample_articles(base, profiles, profile_indicators):
    """Writes articles.json, articleIndicators/, vulnerabilities/, vulnerabilityComponents/; returns expectations."""
    articles = sample_articles()
    write_json(os.path.join(base, "articles.json"),
               collection(articles_context(), [a for a, _, _ in articles], count=True))
    per_article, rejected = {}, []
    for art, recs, form in articles:
        if "id" not in art:
            rejected.append({"title": art["title"], "record": "article", "reason_contains": "id"})
            continue
        aid = art["id"]
        entry = {"title": art["title"], "file": None, "records": 0, "good": 0,
                 "techniques": mentions(TECHNIQUE_RE, [art["body"]["content"]]),
                 "cves": mentions(CVE_RE, [art["body"]["content"]] + art["tags"])}
        per_article[aid] = entry
        if recs is None:
            continue
        rel = "articleIndicators/%s.%s" % (pct(aid), form)
        if form == "ndjson":
            lines = []
            for r in recs:
                if r == "BAD_LINE":
                    # a record cut short, as a truncated capture would leave it
                    lines.append(ndjson_line(article_indicator("microsoft", stub("hostname", "cut.example.com")))[:-25])
                    rejected.append({"id": "%s:%d" % (rel, len(lines)), "record": "line", "reason_contains": "json"})
                else:
                    lines.append(ndjson_line(r))
            write_text(os.path.join(base, rel), "\n".join(lines) + "\n")
        else:
            write_json(os.path.join(base, rel), collection(article_indicators_context(aid), recs))
        good = [r for r in recs if isinstance(r, dict) and artifact_type(r) in KNOWN_TYPES]
        for r in recs:
            if isinstance(r, dict) and r not in good:
                reason = "artifact" if "artifact" not in r else "unknown artifact type"
                rejected.append({"id": r["id"], "record": "article indicator", "reason_contains": reason})
        entry.update(file=rel, records=len(recs), good=len(good))

    vulns = sample_vulnerabilities()
    for cve, (entity, names) in vulns.items():
        write_json(os.path.join(base, "vulnerabilities", pct(cve) + ".json"), entity)
        if names is not None:
            context = GRAPH + "/$metadata#security/threatIntelligence/vulnerabilities('%s')/components" % cve
            write_json(os.path.join(base, "vulnerabilityComponents", pct(cve) + ".json"),
                       collection(context, [component(cve, n) for n in names]))

    texts_by_profile = {p["title"]: [(p.get(f) or {}).get("content") for f in ("description", "tradecraft")]
                        for _, p in profiles}
    profile_cves = {t: mentions(CVE_RE, texts) for t, texts in texts_by_profile.items() if mentions(CVE_RE, texts)}
    cves_found = sorted({c for e in per_article.values() for c in e["cves"]} |
                        {c for cves in profile_cves.values() for c in cves})
    article_values = {}
    for art, recs, _ in articles:
        for r in recs or []:
            if isinstance(r, dict) and artifact_type(r) in KNOWN_TYPES:
                article_values.setdefault(artifact_value(r["artifact"]), []).append(art["id"])
    profile_values = {artifact_value(r["artifact"]) for r in profile_indicators if isinstance(r.get("artifact"), dict)}
    return {
        "listing": "articles.json",
        "records": len(articles),
        "articles": len(per_article),
        "rejected": len(rejected),
        "rejected_records": rejected,
        "per_article": per_article,
        "profile_techniques": {t: mentions(TECHNIQUE_RE, texts) for t, texts in texts_by_profile.items()},
        "technique_notes": TECHNIQUE_NOTES,
        "profile_cves": profile_cves,
        "article_indicator_values_in_two_articles": sorted(v for v, ids in article_values.items() if len(ids) > 1),
        "article_indicator_values_also_in_profiles": sorted(v for v in article_values if v in profile_values),
        "article_indicator_values_only_in_articles": sorted(v for v in article_values if v not in profile_values),
        "cves": {
            "found": cves_found,
            "vulnerability_files": sorted(vulns),
            "component_files": sorted(c for c, (_, names) in vulns.items() if names is not None),
            "not_found": sorted(set(cves_found) - set(vulns)),
        },
    }


def gen_samples():
    base = reset_dir("samples/mdti")
    profiles = make_sample_profiles()
    write_json(os.path.join(base, "intelProfiles.json"),
               collection(profiles_context(), [p for _, p in profiles], count=True))
    inds, malformed = make_sample_indicators(profiles)
    per_profile = {}
    all_recs = []
    for key, prof in profiles:
        if key not in inds:
            per_profile[prof["title"]] = {"id": prof["id"], "file": None, "records": 0}
            continue
        pid = prof["id"]
        recs = inds[key]
        if key == "ochre":
            rel = "indicators/%s.ndjson" % pct(pid)
            lines = [ndjson_line(r) for r in recs]
            # one line that is not valid JSON (truncated record), inserted as line 7
            bad = ndjson_line(indicator("4c1e0b6a-7d2f-4e89-b3a5-91c0d7e2f6a8", "microsoft", "2023-08-02T00:00:00Z",
                                        None, stub("hostname", "truncated.example.com")))[:-27]
            lines.insert(6, bad)
            write_text(os.path.join(base, rel), "\n".join(lines) + "\n")
            malformed.insert(0, {"id": "%s:7" % rel, "record": "line", "reason_contains": "json"})
            n_lines = len(lines)
        else:
            rel = "indicators/%s.json" % pct(pid)
            write_json(os.path.join(base, rel), collection(indicators_context(pid), recs, count=(key == "aqua")))
            n_lines = len(recs)
        per_profile[prof["title"]] = {"id": pid, "file": rel, "records": n_lines}
        all_recs += recs
    hosts, reps = sample_hosts()
    for h, body in hosts.items():
        write_json(os.path.join(base, "hosts", pct(h) + ".json"), body)
    for h, body in reps.items():
        write_json(os.path.join(base, "reputation", pct(h) + ".json"), body)
    articles = gen_sample_articles(base, profiles, all_recs)

    bad_ids = {m["id"] for m in malformed}
    good = [r for r in all_recs if r["id"] not in bad_ids]
    skipped = [r for r in good if artifact_type(r) in SKIPPED_TYPES]
    expected = {
        "dump": "samples/mdti",
        "profiles": len(profiles),
        "actors": sum(1 for _, p in profiles if p["kind"] == "actor"),
        "tools": sum(1 for _, p in profiles if p["kind"] == "tool"),
        "indicator_records": len(all_recs) + 1,  # + the bad NDJSON line
        "good_indicators": len(good),
        "mappable_indicators": len(good) - len(skipped),
        "skipped": len(skipped),
        "rejected": len(malformed),
        "exit_code": 3,
        "rejected_records": malformed,
        "per_profile": per_profile,
        "good_indicators_by_artifact_type": type_counts(good),
        "cross_profile_duplicates": {
            "hostname " + DUP_HOST: ["Aqua Blizzard", "Pewter Sleet", "Storm-2187"],
            "ipAddress " + DUP_IP: ["Aqua Blizzard", "Ochre Tempest"],
            "sha256 " + DUP_SHA256: ["Aqua Blizzard", "Lilac Typhoon", "DriftLoader"],
            "hostname EVIL.Example.COM ~ evil.example.com": ["Aqua Blizzard", "Ochre Tempest"],
            "hostname %s ~ %s" % (IDN_UNICODE, IDN_PUNY): ["Lilac Typhoon", "Pewter Sleet"],
        },
        "articles": articles,
    }
    write_json(os.path.join(ROOT, "samples", "mdti-expected.json"), expected)
    return expected


# --------------------------------------------------------------------------------------------
# tests/fixtures/adversarial
# --------------------------------------------------------------------------------------------

def gen_adversarial():
    base = reset_dir("tests/fixtures/adversarial")
    rng = random.Random(4242)
    P = "#" + NS + ".intelligenceProfile"
    title1 = 'Tin "Quoted" Tempest \\ 🌪️ 𝕏'
    p1 = {
        "@odata.type": P,
        "id": sha256hex("ctiport-adversarial:tin-tempest"),
        "kind": "actor",
        "title": title1,
        "firstActiveDateTime": "2021-01-01T00:00:00.1234567Z",
        "aliases": [title1, "O'Malley's Crew", "C:\\Temp\\x", "dup-alias", "dup-alias", "𝔊𝔬𝔱𝔥𝔦𝔠 Spider 🕷️",
                    "<script>alert('x')</script>", "Back\\\\slash \\' quote", "Tab\there"],
        "targets": ["Financial Services: Banking", "Energy: Oil and Gas", "Financial Services: Banking"],
        "countriesOrRegionsOfOrigin": [country("Russia", "RU")],
        "summary": fc("Line one.\r\nLine two with \"quotes\", a backslash \\ and an emoji 🌪️.", "text"),
        "description": fc(crlf("## Heading with `code` and \\*escaped\\* stars", "",
                               "| a | b |", "|---|---|", "| 1 \\| pipe | 'single' |", "",
                               "- bullet with 𝕏 (non-BMP)", "- path C:\\Users\\Public\\x.dll", "",
                               "```", "rule x { strings: $a = \"\\x90\\x90\" }", "```")),
        "tradecraft": fc("<p>HTML &amp; entities &lt;b&gt;</p>\r\n<p>second</p>", "html"),
        "someFutureProperty": {"nested": [1, 2, 3]},
    }
    p2 = {
        "@odata.type": P,
        "id": "adv~profile.v2_%41",
        "kind": "tool",
        "title": "Null-Content Tool",
        "firstActiveDateTime": None,
        "aliases": [],
        "targets": [],
        "countriesOrRegionsOfOrigin": [],
        "summary": None,
        "description": None,
        "tradecraft": fc("Only tradecraft is present.", "text"),
    }
    p3 = {
        "@odata.type": P.lstrip("#"),
        "id": "profil ünïcode/🦊",
        "kind": "actor",
        "title": "Füchsin Sandstorm 🦊",
        "firstActiveDateTime": "2019-07-04T12:00:00Z",
        "aliases": ["Лиса", "狐狸", "Renard \"le\" Rusé"],
        "targets": ["Government Agencies & Services: Defense"],
        "countriesOrRegionsOfOrigin": [country("Iran", "IR"), country("Lebanon", "LB")],
        "summary": fc(crlf("# Summary", "", "Unicode summary: Ünïcödé ✓ — “curly quotes”.")),
        "description": fc("Plain description.", "text"),
        "tradecraft": None,
    }
    p4 = {
        "@odata.type": "#Microsoft.Graph.Security.IntelligenceProfile",
        "id": "Zm9vL2Jhcit+cXV4Pz0=",
        "kind": "actor",
        "title": "Storm-0000",
        "firstActiveDateTime": "2024-02-29T23:59:59.999Z",
        "aliases": ["Storm-0000"],
        "targets": ["Non-Government Organization: Human Rights Organization"],
        "sponsorStates": [country("North Korea", "KP", beta=True)],
        "summary": fc("", "text"),
        "description": fc(crlf("### Only a heading", "* item \\", "* item '", "* item 🔥 non-BMP")),
        "tradecraft": fc(crlf("Backslash at end \\"), "markdown"),
    }
    p5 = {
        "@odata.type": P,
        "id": sha256hex("ctiport-adversarial:upper").upper(),
        "kind": "tool",
        "title": "UPPER-ID Loader",
        "firstActiveDateTime": "2020-02-24T00:00:00Z",
        "aliases": ["upper-id loader", "UPPER-ID LOADER"],
        "targets": ["IT: Software"],
        "countriesOrRegionsOfOrigin": [],
        "summary": fc("Tool with an upper-case hex id.", "text"),
        "description": fc(crlf("## Table", "| h1 | h2 |", "|:--|--:|", "| x | y |")),
        "tradecraft": fc("none", "text"),
    }
    profiles = [p1, p2, p3, p4, p5]
    # intelProfiles.ndjson; p3 wrapped as {"value": {...}}; p4 written with \u escapes
    lines = [ndjson_line(p1), ndjson_line(p2), ndjson_line({"value": p3}), ndjson_line(p4, ensure_ascii=True),
             ndjson_line(p5)]
    write_text(os.path.join(base, "intelProfiles.ndjson"), "\n".join(lines) + "\n")

    H = lambda v, ot=None: stub("hostname", v, ot)    # noqa: E731
    IP = lambda v, ot=None: stub("ipAddress", v, ot)  # noqa: E731
    U = unclassified
    SH = NS + ".hostname"  # no '#'
    shared_id = "5b2c3d4e-6f70-4a81-9b92-a3b4c5d6e7f8"
    shared = indicator(shared_id, "microsoft", "2022-01-01T00:00:00Z", None, H("shared.example.org"))
    hash_l = hashlib.sha256(b"adv-hash").hexdigest()

    def mk(art, src="microsoft", first=None, last="__random__", iid=None):
        if first is None:
            first = rand_dt(rng, 2020, 2024)
        if last == "__random__":
            last = later_dt(rng, first) if rng.random() < 0.3 else None
        val = art.get("id") or art.get("value")
        return indicator(iid or (guid(rng) if rng.random() < 0.6 else b64_padded("adv$$%s$$%s" % (val, hexstr(rng, 3)))),
                         src, first, last, art)

    ind = {
        p1["id"]: [
            mk(U("url", "http://bad.example.com/it's-a-trap")),
            mk(U("url", "http://bad.example.com/dir\\file.exe")),
            mk(U("url", "http://bad.example.com/a\\\\b")),
            mk(U("url", "http://bad.example.com/q?x=\\'y")),
            mk(U("url", "https://bad.example.com/login.php?user=admin'--")),
            mk(U("url", "http://bad.example.com/say\"hi\"")),
            mk(U("Url", "https://cdn.example.org/загрузка/файл.exe")),
            mk(U("url", "http://例え.テスト/パス?検索=値#断片")),
            mk(U("url", "https://example.net/a%20b/%E2%9C%93?redirect=https%3A%2F%2Fevil.example%2F%27")),
            mk(U("url", "http://[2001:db8::1]:8080/p'q")),
            mk(H("Mixed.CASE.Example.")),
            mk(H("trailing.example.org.", SH)),
            mk(IP("2001:db8::7"), first="2021-05-05T05:05:05Z"),
            mk(IP("198.51.100.0/24")),
            mk(U("sha256", hash_l)),
            shared,
        ],
        p2["id"]: [
            mk(IP("2001:0db8:0000:0000:0000:0000:0000:0007"), src="osint", first="2022-06-06T06:06:06.600Z"),
            mk(IP("2001:DB8::A")),
            mk(IP("::ffff:198.51.100.7")),
            mk(IP("2001:db8:0:0:1:0:0:1")),
            mk(IP("fe80::1")),
            mk(IP("2001:db8:85a3::8a2e:370:7334")),
            mk(IP("2001:db8:abcd::/48")),
            mk(IP("2001:DB8::/32")),
            mk(IP("192.0.2.128/25")),
            mk(IP("203.0.113.5/24")),
            mk(U("SHA256", hash_l.upper()), src="openSourceIntelligence"),
            mk(H("bücher.example")),
        ],
        p3["id"]: [
            mk(H("xn--bcher-kva.example")),
            mk(H("пример.испытание")),
            mk(H("xn--r8jz45g.xn--zckzah")),
            mk(H("例え.テスト", "#Microsoft.Graph.Security.HostName")),
            mk(U("email", "First.Last+tag@Example.COM")),
            mk(U("emailAddress", "o'reilly@example.org")),
            mk(U("email", "用户@例子.测试")),
            mk(U("md5", hashlib.md5(b"adv-md5").hexdigest().upper())),
            mk(U("sha1", hashlib.sha1(b"adv-sha1").hexdigest().upper())),
            mk(U("sha512", hashlib.sha512(b"adv-sha512").hexdigest().upper())),
            mk(U("domain", "Domain-Kind.Example.NET.")),
            mk(H("evil.example.com")),
            mk(U("domain", "evil.example.com")),
            indicator(guid(rng), "microsoft", None, "2023-09-09T09:09:09Z", H("null-first-seen.example")),
            shared,
        ],
        p4["id"]: [
            mk(U("url", "HTTP://UPPER.EXAMPLE.COM/Path?Q=1")),
            mk(U("url", "http://user:p%40ss@creds.example.net/")),
            mk(U("url", "https://bad.example.com/%27%5C%22")),
            mk(U("url", "https://bad.example.com/🔥/ü?q=√")),
            mk(stub("sslCertificate", hashlib.sha1(b"adv-cert").hexdigest().upper())),
            mk(stub("sslCertificate", ":".join(hashlib.sha1(b"adv-cert2").hexdigest().upper()[i:i + 2]
                                                for i in range(0, 40, 2)))),
            mk(U("sha256", hash_l), src="microsoftDefenderThreatIntelligence"),
            mk(H("shared.example.org"), src="public", first="2023-03-03T03:03:03.3Z"),
            mk(stub("hostComponent", b64("nginx$$1.18.0$$Server$$bad.example.com"))),
            mk(stub("passiveDnsRecord", b64("bad.example.com$$198.51.100.7$$false"))),
            shared,
        ],
        p5["id"]: [
            mk(IP("2001:DB8::7"), src="public", first="2023-07-07T07:07:07.000Z"),
            mk(U("fileHash", hashlib.md5(b"adv-fh").hexdigest())),
            mk(U("fileHash", hashlib.sha256(b"adv-fh").hexdigest().upper())),
            mk(U("url", "https://bad.example.com/\\\\server\\share\\'file'")),
            mk(H("evil.example.com", "#" + NS + ".hostname"), src="osint"),
            mk(H("UPPER.EXAMPLE.COM.")),
            mk(stub("ipAddress", "198.51.100.7", NS + ".IpAddress")),
        ],
    }
    # extra unknown field on one indicator (forward compatibility)
    ind[p5["id"]][0]["someFutureField"] = None

    files = {}
    for p in profiles:
        pid = p["id"]
        recs = ind[pid]
        if pid == p2["id"]:
            # NDJSON with CRLF line endings
            rel = "indicators/%s.ndjson" % pct(pid)
            write_text(os.path.join(base, rel), "".join(ndjson_line(r) + "\r\n" for r in recs))
        elif pid == p4["id"]:
            rel = "indicators/%s.ndjson" % pct(pid)
            write_text(os.path.join(base, rel), "".join(ndjson_line(r, ensure_ascii=True) + "\n" for r in recs))
        else:
            rel = "indicators/%s.json" % pct(pid)
            write_json(os.path.join(base, rel), collection(indicators_context(pid), recs),
                       ensure_ascii=(pid == p3["id"]))
        files[pid] = {"file": rel, "indicators": len(recs)}
    all_recs = [r for p in profiles for r in ind[p["id"]]]
    skipped = [r for r in all_recs if artifact_type(r) in SKIPPED_TYPES]
    expected = {
        "dump": "tests/fixtures/adversarial",
        "profiles": len(profiles),
        "indicators": len(all_recs),
        "distinct_indicator_ids": len({r["id"] for r in all_recs}),
        "rejected": 0,
        "skipped": len(skipped),
        "exit_code": 0,
        "per_profile": files,
        "by_artifact_type": type_counts(all_recs),
        "notes": [
            "intelProfiles.ndjson line 3 is a wrapped single entity {\"value\": {...}}",
            "indicator %s appears, identical, in three profiles" % shared_id,
            "2001:db8::7 appears in three notations in three profiles (compressed, full, upper-case)",
            "sha256 %s appears lower/upper-case in three profiles" % hash_l,
            "the NDJSON file of profile 'adv~profile.v2_%41' uses CRLF line endings",
        ],
    }
    write_json(os.path.join(base, "EXPECTED.json"), expected)
    return expected


# --------------------------------------------------------------------------------------------
# tests/fixtures/malformed
# --------------------------------------------------------------------------------------------

def gen_malformed():
    base = reset_dir("tests/fixtures/malformed")
    rng = random.Random(99)
    P = "#" + NS + ".intelligenceProfile"
    pa = {"@odata.type": P, "id": sha256hex("ctiport-malformed:a"), "kind": "actor", "title": "Granite Blizzard",
          "firstActiveDateTime": "2021-01-01T00:00:00Z", "aliases": ["GRANITE"],
          "targets": ["Government Agencies & Services: Defense"],
          "countriesOrRegionsOfOrigin": [country("Russia", "RU")],
          "summary": fc("Fixture actor A.", "text"), "description": fc(crlf("## A", "- one")),
          "tradecraft": fc("n/a", "text")}
    pb = {"@odata.type": P, "id": sha256hex("ctiport-malformed:b"), "kind": "tool", "title": "Quarry RAT",
          "firstActiveDateTime": "2022-02-02T00:00:00.000Z", "aliases": [], "targets": ["IT: Software"],
          "countriesOrRegionsOfOrigin": [],
          "summary": fc("Fixture tool B.", "text"), "description": fc(crlf("## B", "- two")),
          "tradecraft": fc("n/a", "text")}
    write_json(os.path.join(base, "intelProfiles.json"), collection(profiles_context(), [pa, pb]))

    def good(i, prefix):
        kind = i % 5
        if kind == 0:
            art = stub("hostname", "%s-host%d.example.com" % (prefix, i))
        elif kind == 1:
            art = stub("ipAddress", "198.51.100.%d" % (i + (0 if prefix == "a" else 100)))
        elif kind == 2:
            art = unclassified("url", "https://%s-site%d.example.net/path?i=%d" % (prefix, i, i))
        elif kind == 3:
            art = unclassified("sha256", sha256hex("malformed-%s-%d" % (prefix, i)))
        else:
            art = stub("ipAddress", "2001:db8:%s::%x" % ("a" if prefix == "a" else "b", i + 1))
        return indicator(guid(rng), "microsoft", "2023-01-%02dT00:00:00Z" % (i + 1), None, art)

    rejected = []
    # profile A: NDJSON, 10 good + bad JSON line (line 4) + unknown artifact type (line 9)
    recs_a = [good(i, "a") for i in range(10)]
    lines = [ndjson_line(r) for r in recs_a]
    rel_a = "indicators/%s.ndjson" % pct(pa["id"])
    lines.insert(3, '{"@odata.type": "#microsoft.graph.security.intelligenceProfileIndicator", "id": '
                    '"0badjs0n-line", "source": "microsoft", "artifact": {"@odata.type": ')
    rejected.append({"id": "%s:4" % rel_a, "record": "line", "reason_contains": "json"})
    unk_id = "7e57f00d-0000-4000-8000-00000000f007"
    lines.insert(8, ndjson_line(indicator(unk_id, "microsoft", "2023-02-01T00:00:00Z", None,
                                          {"@odata.type": "#" + NS + ".futureArtifactType", "id": "x-future"})))
    rejected.append({"id": unk_id, "record": "indicator", "reason_contains": "unknown artifact type"})
    write_text(os.path.join(base, rel_a), "\n".join(lines) + "\n")

    # profile B: JSON, 10 good + empty artifact + invalid IP
    recs_b = [good(i, "b") for i in range(10)]
    n_good = len(recs_a) + len(recs_b)
    empty_id = "e0e0e0e0-0000-4000-8000-0000000a0f00"
    badip_id = "b1d1b1d1-0000-4000-8000-000000999123"
    recs_b.insert(2, indicator(empty_id, "osint", "2023-03-01T00:00:00Z", None, {}))
    recs_b.insert(7, indicator(badip_id, "microsoft", "2023-03-02T00:00:00.000Z", None, stub("ipAddress", "999.1.2.3")))
    rejected.append({"id": empty_id, "record": "indicator", "reason_contains": "artifact"})
    rejected.append({"id": badip_id, "record": "indicator", "reason_contains": "ip"})
    write_json(os.path.join(base, "indicators", pct(pb["id"]) + ".json"),
               collection(indicators_context(pb["id"]), recs_b))
    expected = {
        "profiles": 2,
        "good_indicators": n_good,
        "skipped": 0,
        "rejected_count": len(rejected),
        "exit_code": 3,
        "rejected": rejected,
    }
    write_json(os.path.join(base, "EXPECTED.json"), expected)
    return expected


def main():
    s = gen_samples()
    a = gen_adversarial()
    m = gen_malformed()
    print("samples/mdti: %d profiles, %d indicator records (%d good, %d skipped-type, %d rejected)" % (
        s["profiles"], s["indicator_records"], s["good_indicators"], s["skipped"], s["rejected"]))
    print("tests/fixtures/adversarial: %d profiles, %d indicators (%d skipped-type)" % (
        a["profiles"], a["indicators"], a["skipped"]))
    print("tests/fixtures/malformed: %d profiles, %d good indicators, %d rejected" % (
        m["profiles"], m["good_indicators"], m["rejected_count"]))


if __name__ == "__main__":
    main()
