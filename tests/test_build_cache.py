"""The cocotb build cache cannot go stale: builds are keyed by the installation they link to
(Python, cocotb's path and version, the simulator's path and version), never shared between
installations, and a build whose installation is gone is rebuilt."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cosim.hardware import backends

from .conftest import require_simulator

ROOT = Path(__file__).parent.parent


def test_the_key_names_the_installation():
    needs = backends.installation("icarus")
    assert set(needs) == {"python", "cocotb", "cocotb_libs", "simulator", "cxxflags"}
    import cocotb

    assert needs["cocotb"].startswith(str(Path(cocotb.__file__).parent.resolve()))
    assert needs["python"].startswith(sys.executable)


def test_a_build_whose_installation_is_gone_is_not_used(tmp_path):
    needs = backends.installation("icarus")
    build = tmp_path / "icarus-x"
    build.mkdir()
    (build / backends.BUILT).write_text(json.dumps(needs))
    assert backends._usable(build, needs)
    gone = {**needs, "cocotb_libs": str(tmp_path / "removed" / "libs")}
    (build / backends.BUILT).write_text(json.dumps(gone))
    assert not backends._usable(build, gone)  # its libraries are gone
    assert not backends._usable(build, needs)  # another installation's build
    (build / backends.BUILT).write_text("ok\n")  # a marker of the old format
    assert not backends._usable(build, needs)


def test_the_stale_library_message_is_recognized():
    line = ("sim_build/Vtop: error while loading shared libraries: libcocotbvpi_verilator.so: "
            "cannot open shared object file: No such file or directory")
    assert backends._STALE_BUILD.search(line)


_RUN = """
import sys
from cosim.hardware.backends import simulate
from cosim.hardware.testbench import Job
from cosim.scenario.format import load_scenario
(run,) = simulate([Job(load_scenario(sys.argv[1]))], "verilator")
print(run.outcomes[0].l2.delivered)
"""


@pytest.mark.slow
def test_removing_the_installation_a_build_linked_to_breaks_no_other(tmp_path):
    """The failure users hit: checkout A builds Verilator (linking A's cocotb libraries),
    A's environment goes away, checkout B runs. B must not reuse A's build: it builds its
    own, says so, and runs."""
    require_simulator("verilator")
    import cocotb

    site_packages = Path(cocotb.__file__).parents[1]
    other = tmp_path / "other-site"  # installation A: a copy of cocotb at another path
    for package in ("cocotb", "cocotb_tools", "pygpi", "find_libpython"):
        if (site_packages / package).exists():
            shutil.copytree(site_packages / package, other / package)
    env = {**os.environ, "PI_COSIM_BUILD_DIR": str(tmp_path / "builds")}
    seed = str(ROOT / "scenarios" / "seed-ipiv.toml")

    first = subprocess.run([sys.executable, "-c", _RUN, seed], capture_output=True, text=True,
                           env={**env, "PYTHONPATH": str(other)}, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.strip() == "(65,)"
    assert "building the verilator simulation" in first.stderr
    built = {p.name for p in (tmp_path / "builds").iterdir() if p.is_dir()}
    assert len(built) == 1
    # the exported harness is kept beside the builds, shared by them (design-keyed)
    assert len(list((tmp_path / "builds").glob("harness-*.v"))) == 1

    shutil.rmtree(other)  # installation A is gone
    second = subprocess.run([sys.executable, "-c", _RUN, seed], capture_output=True,
                            text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.strip() == "(65,)"
    assert "building the verilator simulation" in second.stderr  # its own build
    assert "built the verilator simulation in" in second.stderr
    assert len({p.name for p in (tmp_path / "builds").iterdir() if p.is_dir()} - built) == 1

    third = subprocess.run([sys.executable, "-c", _RUN, seed], capture_output=True,
                           text=True, env=env, timeout=600)
    assert third.returncode == 0 and "building" not in third.stderr  # reused while it runs
