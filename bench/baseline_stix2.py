"""Baseline for `make bench`: the way a typical Python connector maps MDTI indicators to STIX, with
the OASIS `stix2` library (one Indicator object and one relationship per indicator, then one
bundle). Reads the same dump as ctiport and stops after --limit indicators.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

import stix2


def records(path: Path):
    if path.suffix == ".ndjson":
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    else:
        with open(path, encoding="utf-8") as f:
            yield from json.load(f)["value"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dump", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=20000)
    args = parser.parse_args()
    profiles_file = next(p for p in (args.dump / "intelProfiles.json", args.dump / "intelProfiles.ndjson") if p.exists())
    objects, count = [], 0
    for profile in records(profiles_file):
        actor = stix2.ThreatActor(name=profile.get("title") or profile["id"])
        objects.append(actor)
        for extension in ("json", "ndjson"):
            path = args.dump / "indicators" / ("%s.%s" % (quote(profile["id"], safe="-._~"), extension))
            if not path.exists():
                continue
            for indicator in records(path):
                artifact = indicator.get("artifact") or {}
                value = artifact.get("value") or artifact.get("id")
                if not value or count >= args.limit:
                    continue
                escaped = value.replace("\\", "\\\\").replace("'", "\\'")
                try:
                    stix_indicator = stix2.Indicator(
                        name=value, pattern="[domain-name:value = '%s']" % escaped, pattern_type="stix",
                        valid_from=indicator.get("firstSeenDateTime") or "2020-01-01T00:00:00Z")
                except stix2.exceptions.STIXError:
                    # A date stix2 cannot read (e.g. 7 fractional digits): what connectors do is skip.
                    continue
                objects.append(stix_indicator)
                objects.append(stix2.Relationship(stix_indicator, "indicates", actor))
                count += 1
        if count >= args.limit:
            break
    args.out.write_text(stix2.Bundle(objects=objects).serialize())
    print(json.dumps({"indicators": count, "objects": len(objects)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
