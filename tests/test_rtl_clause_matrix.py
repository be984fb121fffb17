"""Every conformance clause of the catalogue (docs/clauses.toml) is named by at least one RTL
test (in the test's name, e.g. ``test_apic_6_9_14_...``, or as ``APIC-7`` in its text), or
carries an ``out_of_scope`` reason there. ``clause_matrix()`` is what a signoff report reads."""

import re
import tomllib
from pathlib import Path

TESTS = Path(__file__).parent
CATALOGUE = tomllib.loads((TESTS.parent / "docs" / "clauses.toml").read_text())["clause"]
EVERY = [c["id"] for c in CATALOGUE]
OUT_OF_SCOPE = {c["id"]: c["out_of_scope"] for c in CATALOGUE if "out_of_scope" in c}


def clause_matrix() -> dict[str, set[str]]:
    covered: dict[str, set[str]] = {}
    for file in sorted(TESTS.glob("test_rtl_*.py")):
        if file.name == Path(__file__).name:
            continue
        text = file.read_text()
        for match in re.finditer(r"def (test_\w+)", text):
            for group in re.finditer(r"(apic|ext|pi|vid|ipiv)((?:_\d+)+)", match.group(1)):
                for number in group.group(2).strip("_").split("_"):
                    covered.setdefault(f"{group.group(1).upper()}-{number}", set()).add(
                        f"{file.name}::{match.group(1)}")
        for match in re.finditer(r"\b(APIC|EXT|PI|VID|IPIV)-(\d+)\b", text):
            covered.setdefault(f"{match.group(1)}-{match.group(2)}", set()).add(file.name)
    return covered


def test_every_clause_is_tested_or_out_of_scope_with_a_reason():
    covered = clause_matrix()
    missing = [c for c in EVERY if c not in covered and c not in OUT_OF_SCOPE]
    assert missing == []
    assert not set(OUT_OF_SCOPE) & set(covered), "a clause listed out of scope is tested"
    unknown = [c for c in covered if c not in EVERY]
    assert unknown == [], "tests name clauses that docs/clauses.toml does not define"


def test_the_catalogue_is_complete_and_names_a_component_for_every_rtl_clause():
    """APIC-1..14, EXT-1..6, PI-1..17, VID-1..12, IPIV-1..9, each once, each with a
    requirement and SDM section; an implemented clause names an existing RTL component."""
    sizes = {"APIC": 14, "EXT": 6, "PI": 17, "VID": 12, "IPIV": 9}
    assert EVERY == [f"{k}-{i}" for k, n in sizes.items() for i in range(1, n + 1)]
    for clause in CATALOGUE:
        assert clause["requirement"] and clause["sdm"], clause["id"]
        if "out_of_scope" in clause:
            continue
        path, name = clause["component"].split()
        assert f"class {name}(" in (TESTS.parent / path).read_text(), clause["id"]
