"""software_model imports neither amaranth nor cocotb (docs/architecture.md)."""

import pkgutil
import subprocess
import sys

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
