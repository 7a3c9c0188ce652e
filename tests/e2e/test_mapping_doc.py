"""The mapping table in docs/mapping.md must account for every property of the two Graph types.

The property lists come from the Graph reference (graph-ti-api.md §7.1 and §7.3), not from
ctiport's code, so a property the mapper forgets to document fails here.
"""
import re
from pathlib import Path

MAPPING_DOC = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"

INTELLIGENCE_PROFILE = [
    "id", "kind", "title", "firstActiveDateTime", "aliases", "targets",
    "countriesOrRegionsOfOrigin", "summary", "description", "tradecraft", "indicators",
    "sponsorStates",  # beta name of countriesOrRegionsOfOrigin
]
INTELLIGENCE_PROFILE_INDICATOR = ["id", "source", "firstSeenDateTime", "lastSeenDateTime", "artifact"]


def table_rows(heading: str) -> list[str]:
    text = MAPPING_DOC.read_text(encoding="utf-8")
    match = re.search(rf"^#+ `{heading}`\n(.*?)(?=^#+ |\Z)", text, re.S | re.M)
    assert match, f"docs/mapping.md has no '`{heading}`' section"
    return [line for line in match.group(1).splitlines() if line.startswith("|")]


def documented_properties(heading: str) -> set[str]:
    names = set()
    for row in table_rows(heading)[2:]:  # skip header and separator
        first_cell = row.split("|")[1]
        names.update(re.findall(r"`([A-Za-z@.]+)`", first_cell))
    return names


def test_every_profile_property_is_in_the_mapping_table():
    missing = set(INTELLIGENCE_PROFILE) - documented_properties("intelligenceProfile")
    assert not missing, f"docs/mapping.md lacks intelligenceProfile properties: {sorted(missing)}"


def test_every_indicator_property_is_in_the_mapping_table():
    missing = set(INTELLIGENCE_PROFILE_INDICATOR) - documented_properties("intelligenceProfileIndicator")
    assert not missing, f"docs/mapping.md lacks intelligenceProfileIndicator properties: {sorted(missing)}"


def test_every_row_says_where_it_goes_or_why_it_is_dropped():
    for heading in ("intelligenceProfile", "intelligenceProfileIndicator"):
        for row in table_rows(heading)[2:]:
            cells = [c.strip() for c in row.split("|")[1:-1]]
            assert len(cells) == 2 and cells[1], f"row without a mapping: {row}"
            if "dropped" in cells[1].lower() and "`" not in cells[1].split("dropped")[0]:
                assert "because" in cells[1] or ":" in cells[1] or "(" in cells[1], f"drop without a reason: {row}"
