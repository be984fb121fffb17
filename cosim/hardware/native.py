"""The native Verilator backend (``verilator-native``): the harness compiled by Verilator with a
C++ main of its own, no cocotb and no VPI, kept running as a server that takes batches of
encoded jobs on standard input and answers with their result records on standard output.

It runs the same harness (``cosim.hardware.harness``) over the same exported design as the
cocotb backends, with the same batch loop as :func:`cosim.hardware.batches.run_encoded`
(batches of the job memory's depth, a batch whose results overflow the result memory resumed
from an empty one), so its records decode (:func:`~cosim.hardware.testbench.decode`) into the
same side runs; only the per-cycle cost differs: no VPI callbacks per clock edge, and the
process starts once per session instead of once per call. The benchmark's raw limit
(``python -m bench``) is this server.

Protocol (text lines, hex words without ``0x``): the parent writes ``n trace`` and ``n`` job
words; the server answers ``m cycles`` and ``m`` result words (``cycles``: harness clock
cycles spent on the request), or ``error TEXT``. End of input ends the server.

Builds are cached beside the cocotb builds (:func:`cosim.hardware.backends.build_root`), keyed
by the design, the Verilator installation, this file's C++ and ``CXXFLAGS``.
"""

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cosim.hardware.harness import ResultKind

__all__ = ["NativeSession", "SERVER_MAIN", "build_native"]

if TYPE_CHECKING:
    from cosim.hardware.testbench import Job
    from cosim.scenario.drain import SideRun

TOPLEVEL = "pi_cosim_harness"

SERVER_MAIN = r"""
// pi-cosim's native harness server: batches of encoded jobs through the harness, no VPI.
#include "Vpi_cosim_harness.h"
#include "Vpi_cosim_harness___024root.h"
#include "verilated.h"
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

static void set_wide(EData* words, int n, const char* hex, size_t len) {
    for (int i = 0; i < n; ++i) words[i] = 0;
    int bit = 0;
    for (long i = (long)len - 1; i >= 0 && bit < n * 32; --i, bit += 4) {
        char c = hex[i];
        unsigned v = (c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
        words[bit / 32] |= (EData)v << (bit % 32);
    }
}

static void put_wide(std::string& out, const EData* words, int n) {
    static const char digits[] = "0123456789abcdef";
    bool started = false;
    for (int i = n - 1; i >= 0; --i)
        for (int s = 28; s >= 0; s -= 4) {
            unsigned d = (words[i] >> s) & 15;
            if (d || started || (i == 0 && s == 0)) { out += digits[d]; started = true; }
        }
    out += '\n';
}

int main(int argc, char** argv) {
    VerilatedContext ctx;
    Vpi_cosim_harness top{&ctx};
    auto* root = top.rootp;
    const int depth = sizeof(root->pi_cosim_harness__DOT__jobs)
        / sizeof(root->pi_cosim_harness__DOT__jobs[0]);
    const int job_words = sizeof(root->pi_cosim_harness__DOT__jobs[0]) / sizeof(EData);
    const int result_words = sizeof(root->pi_cosim_harness__DOT__results[0]) / sizeof(EData);
    top.clk = 0; top.rst = 0; top.start = 0; top.trace_memory = 0; top.eval();
    long cycles = 0;
    auto tick = [&]() { top.clk = 1; top.eval(); top.clk = 0; top.eval(); ++cycles; };
    char* line = nullptr;
    size_t cap = 0;
    std::vector<std::string> jobs;
    std::string out;
    long n, trace;
    while (getline(&line, &cap, stdin) > 0) {
        if (sscanf(line, "%ld %ld", &n, &trace) != 2) { printf("error bad request\n"); return 2; }
        jobs.clear();
        for (long i = 0; i < n; ++i) {
            ssize_t len = getline(&line, &cap, stdin);
            if (len <= 0) { printf("error input ended inside a request\n"); return 2; }
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) --len;
            jobs.emplace_back(line, len);
        }
        top.trace_memory = trace ? 1 : 0;
        cycles = 0;
        out.clear();
        long records = 0;
        for (long at = 0; at < n; at += depth) {
            long count = std::min(n - at, (long)depth);
            for (long i = 0; i < count; ++i)
                set_wide(&root->pi_cosim_harness__DOT__jobs[i][0], job_words,
                         jobs[at + i].data(), jobs[at + i].size());
            long first = 0;
            while (first < count) {
                top.n_jobs = count; top.first_job = first; top.start = 1; tick(); top.start = 0;
                while (!top.done) tick();
                long written = top.n_results, keep = written, ended = 0;
                if (top.overflow) {
                    // the last job started did not fit: keep the jobs that ended, run that one
                    // again from an empty result memory (run_encoded does the same)
                    keep = 0;
                    for (long i = 0; i < written; ++i)
                        if ((root->pi_cosim_harness__DOT__results[i][0] & 3) == END_KIND) {
                            keep = i + 1; ++ended;
                        }
                    if (!ended) {
                        printf("error job %ld: its results alone do not fit the harness's "
                               "result memory\n", at + first);
                        fflush(stdout);
                        return 2;
                    }
                }
                for (long i = 0; i < keep; ++i)
                    put_wide(out, &root->pi_cosim_harness__DOT__results[i][0], result_words);
                records += keep;
                first = top.overflow ? first + ended : (long)top.job;
            }
        }
        printf("%ld %ld\n", records, cycles);
        fwrite(out.data(), 1, out.size(), stdout);
        fflush(stdout);
    }
    return 0;
}
"""


def _verilator_env() -> None:
    from cosim.hardware import backends

    backends._simulator_env("verilator")


@functools.cache
def _key() -> str:
    from cosim.hardware import backends

    digest = hashlib.sha256()
    for part in (backends._design_key(), backends._simulator_version("verilator"),
                 os.environ.get("CXXFLAGS", ""), SERVER_MAIN, str(ResultKind.END.value),
                 backends.verilator_public(ports=False)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def build_native() -> Path:
    """The server binary, built once per design and Verilator installation (cached); a
    build says so on standard error with the time it took."""
    from cosim.hardware import backends
    from cosim.hardware.backends import SimulationFailed, build_root

    _verilator_env()
    work = build_root() / f"verilator-native-{_key()}"
    binary = work / "obj_dir" / "server"
    if (work / backends.BUILT).exists() and binary.exists():
        return binary
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    print(f"pi-cosim: building the native verilator server in {work} ...", file=sys.stderr,
          flush=True)
    started = time.monotonic()
    (work / f"{TOPLEVEL}.v").write_text(backends._verilog())
    (work / "main.cpp").write_text(SERVER_MAIN)
    (work / "memories.vlt").write_text(backends.verilator_public(ports=False))
    import rtl

    command = ["verilator", "--cc", "--exe", "--build", "-O3", "-Wno-fatal", "--top-module",
               TOPLEVEL, "-j", str(os.cpu_count() or 1), "-CFLAGS",
               f"-DEND_KIND={ResultKind.END.value}",
               str(Path(rtl.__file__).parent / "verilator_lint.vlt"), "memories.vlt",
               f"{TOPLEVEL}.v", "main.cpp", "-o", "server"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True)
    (work / "build.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0 or not binary.exists():
        raise SimulationFailed(f"the native verilator build failed; see {work / 'build.log'}")
    (work / backends.BUILT).write_text(f"{_key()}\n")
    print(f"pi-cosim: built the native verilator server in {time.monotonic() - started:.1f} s",
          file=sys.stderr, flush=True)
    return binary


class NativeSession:
    """One running server: :meth:`run` sends encoded jobs and returns their result records
    (and the harness cycles they took). Use as a context manager, or :meth:`close`."""

    def __init__(self):
        self.binary = build_native()
        self.process = subprocess.Popen([str(self.binary)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, bufsize=1 << 20)
        self.cycles = 0

    def run(self, words: list[int], trace_memory: bool = False) -> list[int]:
        from cosim.hardware.backends import SimulationFailed

        assert self.process.stdin is not None and self.process.stdout is not None
        request = f"{len(words)} {int(trace_memory)}\n" + "".join(f"{w:x}\n" for w in words)
        self.process.stdin.write(request.encode())
        self.process.stdin.flush()
        header = self.process.stdout.readline().decode()
        if not header or header.startswith("error"):
            self.close()
            raise SimulationFailed("the native verilator server failed: "
                                   + (header.strip() or "it ended without an answer"))
        count, cycles = map(int, header.split())
        self.cycles += cycles
        read = self.process.stdout.readline
        return [int(read(), 16) for _ in range(count)]

    def run_jobs(self, jobs: "list[Job]") -> "list[SideRun]":
        """The jobs' side runs: encoded, served, decoded (as every backend decodes)."""
        from cosim.hardware.testbench import decode, encode, trace_memory

        return decode(self.run([encode(job) for job in jobs], trace_memory()), jobs)

    def close(self) -> None:
        """End the server (end of its input) and close both pipes."""
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is not None and not stdin.closed:
            stdin.close()
        self.process.wait()
        if stdout is not None and not stdout.closed:
            stdout.close()

    def __enter__(self) -> "NativeSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
