"""Shared fixtures: vCPUs of the software model in standard nested states; the simulators;
amaranth.sim and waveform-on-failure helpers."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from cosim.hardware.backends import SIMS, WAVE_SIMS, SimulatorUnavailable, check_simulator
from software_model import KernelVersion, environment
from software_model.constants import (
    CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
    CPU_BASED_TPR_SHADOW,
    PIN_BASED_EXT_INTR_MASK,
    PIN_BASED_POSTED_INTR,
    SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
    VM_EXIT_ACK_INTR_ON_EXIT,
)
from software_model.state import PiDesc, Vcpu, Vmcs12

DESC_ADDR = 0x10000
VAPIC_ADDR = 0x20000
NV = 0xFF


def pi_vmcs12(**changes) -> Vmcs12:
    """vmcs12 of kvm-unit-tests' vmx_posted_interrupts_test: PI with NV 0xff, VID, ack."""
    fields = dict(
        pin_based_vm_exec_control=PIN_BASED_EXT_INTR_MASK | PIN_BASED_POSTED_INTR,
        cpu_based_vm_exec_control=CPU_BASED_TPR_SHADOW | CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
        secondary_vm_exec_control=SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
        vm_exit_controls=VM_EXIT_ACK_INTR_ON_EXIT,
        posted_intr_nv=NV,
        posted_intr_desc_addr=DESC_ADDR,
        virtual_apic_page_addr=VAPIC_ADDR,
        guest_rflags_if=True,
    )
    fields.update(changes)
    return Vmcs12(**fields)


def vcpu_in_l2(version: KernelVersion, vmcs12: Vmcs12 | None = None, *, pir=(0x41,),
               on=True) -> Vcpu:
    """A vCPU running L2 (quiescent) with the nested descriptor holding ``pir``."""
    vcpu = environment.new_vcpu(version)
    desc = vcpu.memory.map_pi_desc(DESC_ADDR)
    desc.pir = sum(1 << v for v in pir)
    desc.on = on
    desc.nv = NV
    environment.start_in_l2(vcpu, vmcs12 or pi_vmcs12())
    vcpu.log.clear()
    return vcpu


def nested_desc(vcpu: Vcpu) -> PiDesc:
    return vcpu.memory.pi_descs[DESC_ADDR]


@pytest.fixture(params=list(KernelVersion), ids=lambda v: v.value)
def version(request) -> KernelVersion:
    return request.param


def simulate(dut, testbench, setup=None):
    """Run ``await testbench(ctx)`` on ``dut`` under amaranth.sim with a 100 MHz clock;
    ``setup(ctx)`` (if given) drives idle inputs first."""
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        if setup is not None:
            setup(ctx)
        await testbench(ctx)

    sim.add_testbench(bench)
    sim.run()


#: where failing cosimulation tests write their dumps
WAVES_DIR = Path(__file__).resolve().parent.parent / "waveforms"


@contextmanager
def waves_on_failure(job, sim: str, directory: Path | None = None):
    """On a failed assertion inside, replay ``job`` with waveforms on backend ``sim`` (the
    cocotb Verilator build for the native server, which has no tracing) and add the dump's
    path (and its ``.gtkw``) to the failure message."""
    from cosim.hardware.backends import simulate as simulate_hardware

    try:
        yield
    except AssertionError as exc:
        target = directory or WAVES_DIR
        target.mkdir(parents=True, exist_ok=True)
        (run,) = simulate_hardware([job], sim if sim in WAVE_SIMS else "verilator", target)
        raise AssertionError(f"{exc}\nwaveform: {run.waves} (open: gtkwave "
                             f"{run.waves.with_suffix('.gtkw')})") from exc


def require_tools(*tools: str, install: str) -> None:
    """Skip (fail under ``CI=true``) unless every program in ``tools`` is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    message = f"needs {', '.join(missing)} ({install})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must have it: {message}")
    pytest.skip(message)


def require_simulator(sim: str) -> str:
    """``sim`` if it is installed. Missing: a skip with the install hint on a user's machine,
    a failure under CI (``CI=true``), where every simulator must run."""
    if sim == "amaranth":
        return sim
    try:
        check_simulator(sim)
    except SimulatorUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have every simulator: {exc}")
        pytest.skip(str(exc))
    return sim


@pytest.fixture(scope="module")
def native() -> str:
    """The native Verilator server (``verilator-native``), the fastest backend."""
    return require_simulator("verilator-native")


@pytest.fixture(params=SIMS)
def sim(request) -> str:
    """Every backend of ``cosim.hardware.backends.SIMS``."""
    return require_simulator(request.param)


@pytest.fixture(params=["icarus", "verilator"])
def cocotb_sim(request) -> str:
    """The cocotb backends (Icarus, Verilator)."""
    return require_simulator(request.param)


@pytest.fixture(params=[s for s in SIMS if s != "amaranth"])
def compiled_sim(request) -> str:
    """The backends that simulate the exported Verilog: cocotb with Icarus or Verilator, and
    the native Verilator server."""
    return require_simulator(request.param)


@pytest.fixture(params=WAVE_SIMS)
def wave_sim(request) -> str:
    """The backends that write waveform dumps."""
    return require_simulator(request.param)
