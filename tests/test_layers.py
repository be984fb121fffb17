"""The dependency direction of cosim's sub-packages (cosim/__init__.py): every import of a
cosim module goes to the same package or a lower layer, the three middle packages do not
import each other, and only the hardware side imports the RTL."""

import ast
from pathlib import Path

import pytest

COSIM = Path(__file__).parent.parent / "cosim"
#: package -> layer; a module may import its own package and any package of a lower layer
LAYERS = {"scenario": 0, "hardware": 1, "reference": 1, "judge": 1, "campaign": 2, "report": 2,
          "cli": 3, "__main__": 4}


def _package(module: str) -> str:
    """``cosim.hardware.testbench`` -> ``hardware``; ``cosim.cli`` -> ``cli``."""
    return module.split(".")[1]


def _imports(path: Path, relative_allowed: bool = False) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level and not relative_allowed:
            raise AssertionError(f"{path}: relative import; cosim uses absolute imports")
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def _modules():
    for path in sorted(COSIM.rglob("*.py")):
        parts = path.relative_to(COSIM.parent).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) <= 2:
            continue  # the package docstring
        yield path, ".".join(p for p in parts if p != "__init__")


def _violations(module: str, names: list[str]) -> list[str]:
    """What is wrong with ``module`` importing ``names``."""
    own, wrong = _package(module), []
    for name in names:
        if name.split(".")[0] == "rtl" and own != "hardware":
            wrong.append(f"{module} imports {name}: only cosim.hardware uses rtl")
        if name.split(".")[0] != "cosim":
            continue
        other = _package(name) if "." in name else "?"
        if other not in LAYERS:
            wrong.append(f"{module} imports {name}, which is in no layer")
        elif other != own and LAYERS[other] >= LAYERS[own]:
            wrong.append(f"{module} (layer {LAYERS[own]}) imports {name} "
                         f"(layer {LAYERS[other]})")
    return wrong


@pytest.mark.parametrize("path,module", list(_modules()), ids=lambda x: str(x))
def test_imports_run_down_the_layers(path, module):
    assert _violations(module, _imports(path)) == []


def test_the_check_catches_arrows_that_run_up_or_across():
    assert _violations("cosim.scenario.drain", ["cosim.judge.scoreboard"]) == [
        "cosim.scenario.drain (layer 0) imports cosim.judge.scoreboard (layer 1)"]
    assert _violations("cosim.hardware.testbench", ["cosim.reference.kvm"]) == [
        "cosim.hardware.testbench (layer 1) imports cosim.reference.kvm (layer 1)"]
    assert _violations("cosim.judge.findings", ["rtl.top"]) == [
        "cosim.judge.findings imports rtl.top: only cosim.hardware uses rtl"]
    assert _violations("cosim.hardware.waves", ["rtl.top", "cosim.scenario.format"]) == []


def test_every_package_is_in_a_layer():
    packages = {p.name for p in COSIM.iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules = {p.stem for p in COSIM.glob("*.py") if p.stem != "__init__"}
    assert packages | modules == set(LAYERS)


def test_nothing_outside_tests_and_bench_imports_cosim():
    root = COSIM.parent
    for top in ("rtl", "software_model"):
        for path in (root / top).rglob("*.py"):
            names = _imports(path, relative_allowed=True)
            assert not any(n.split(".")[0] == "cosim" for n in names), path
