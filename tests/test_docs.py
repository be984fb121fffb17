"""The repo explains itself: docs/ and README.md point at no file outside the repo, and the
facts they repeat from the code are the code's (the scenario keys, the modelled kernel
functions and version switches, the findings)."""

import re
from pathlib import Path

import software_model
from cosim.judge.findings import DEVIATIONS, KNOWN_BUGS
from cosim.scenario.format import reference
from software_model.version import Change

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
MODULES = ("lapic", "irq", "vmx", "nested", "x86", "posted_intr")


def test_docs_and_readme_need_nothing_outside_the_repo():
    for path in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.glob("*")]:
        text = path.read_text()
        # a relative path out of the repo, or the design and spec files that live outside it
        assert not re.search(r"(?<![.\w])\.\./", text), path.name
        assert "DESIGN.md" not in text, path.name
        assert not re.search(r"\bspec/(sdm|kvm)\.md", text), path.name


def test_the_scenario_reference_is_generated_from_the_schema():
    text = (DOCS / "scenario-format.md").read_text()
    generated = text.split("<!-- generated: python -m cosim.scenario.format -->\n")[1]
    assert generated.split("<!-- end generated -->")[0] == reference()


def test_kernel_page_names_every_modelled_function_and_every_switch():
    import importlib

    text = (DOCS / "kernel.md").read_text()
    for name in MODULES:
        module = importlib.import_module(f"software_model.{name}")
        section = text.split(f"### `software_model/{name}.py`")[1].split("###")[0]
        listed = set(re.findall(r"`(\w+)`", section.split("\n\n")[2]))
        functions = {n for n in module.__all__
                     if callable(getattr(module, n)) and not isinstance(getattr(module, n), type)}
        assert listed == functions, name
        for attr, value in vars(module).items():
            if isinstance(value, Change):
                assert f"`{name}.{attr}` | {value.commit}" in text, attr
                assert f"| {value.first.value} |" in text.split(f"`{name}.{attr}`")[1].split(
                    "\n")[0], attr
    assert software_model.KernelVersion.NOV_2024.commit in text


def test_readme_findings_tables_follow_the_findings():
    readme = (ROOT / "README.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (KB\d+|D\d+) \|.*$", readme, re.M)}
    assert set(rows) == {f.id for f in (*KNOWN_BUGS, *DEVIATIONS)}
    for bug in KNOWN_BUGS:
        row = rows[bug.id]
        assert f"`{bug.scenario}`" in row, bug.id
        assert (bug.fixed == "open") == ("| open |" in row), bug.id
        versions = "all" if len(bug.versions) == 3 else ", ".join(
            v.value for v in software_model.KernelVersion if v in bug.versions)
        assert f"| {versions} |" in row, bug.id
        assert (ROOT / "scenarios" / f"{bug.scenario}.toml").exists(), bug.id
    for deviation in DEVIATIONS:
        assert f"`{deviation.scenario}`" in rows[deviation.id]
