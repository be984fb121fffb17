"""software_model imports neither amaranth nor cocotb (docs/architecture.md), and reads its
kernel version only through the version switches."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import software_model


def test_every_software_model_module_imports_without_amaranth_or_cocotb():
    modules = [f"software_model.{m.name}" for m in pkgutil.iter_modules(software_model.__path__)]
    assert len(modules) >= 9
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('amaranth', 'cocotb',"
        " 'cocotb_tools', 'cosim', 'rtl'))\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def _unswitched(tree: ast.AST, switches: set[str]) -> tuple[list[int], int]:
    """The lines that read a ``version`` name or ``.version`` attribute other than as the
    argument of a switch, a ``version=`` keyword, a ``version = ...`` local or inside an
    error message; and how many switch calls read it."""
    other: list[int] = []
    asked = 0

    def allowed(node: ast.AST, ancestors: list[ast.AST]) -> bool:
        nonlocal asked
        parent = ancestors[-1]
        if (isinstance(parent, ast.Call) and getattr(parent.func, "id", None) in switches
                and parent.args == [node]):
            asked += 1
            return True
        return (isinstance(parent, ast.keyword) and parent.arg == "version"
                or isinstance(parent, ast.Assign) and parent.value is node
                and [getattr(t, "id", None) for t in parent.targets] == ["version"]
                or any(isinstance(a, ast.Raise) for a in ancestors)
                and any(isinstance(a, ast.JoinedStr) for a in ancestors))

    def walk(node: ast.AST, ancestors: list[ast.AST]) -> None:
        if ((isinstance(node, ast.Attribute) and node.attr == "version"
                or isinstance(node, ast.Name) and node.id == "version"
                and isinstance(node.ctx, ast.Load)) and not allowed(node, ancestors)):
            other.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            walk(child, [*ancestors, node])

    walk(tree, [])
    return other, asked


def test_the_model_reads_its_version_only_through_change_switches():
    """What cosim.reference.kvm.run_models relies on to share one version's run with another
    (software_model/version.py): a version is asked of a Change (``SWITCH(vcpu.version)``),
    passed on where a vCPU is made (``Vcpu(version=version)``), held in a local for switches
    (``version = vcpu.version``) or named in an error message; nothing else reads it."""
    root = Path(software_model.__file__).parent
    switches = {target.id for path in root.glob("*.py")
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "Change"
                for target in node.targets if isinstance(target, ast.Name)}
    assert len(switches) == 5
    asked = 0
    for path in sorted(root.glob("*.py")):
        if path.name != "version.py":
            lines, n = _unswitched(ast.parse(path.read_text()), switches)
            assert lines == [], f"{path.name}: lines {lines} read the version otherwise"
            asked += n
    assert asked == 6  # the six statements where the kernel source differs
    # and the check sees a read that is not a switch
    probe = "if vcpu.version == KernelVersion.NOV_2024:\n    pass\nx = NV_AT_INJECTION(v.version)\n"
    assert _unswitched(ast.parse(probe), switches) == ([1], 1)
