// pi-cosim's Verilator main for cocotb: cocotb 2.1's own main
// (cocotb/share/lib/verilator/verilator.cpp, Revised BSD License, copyright cocotb
// contributors), with one addition: given +pi_cosim_half_period=N (in simulation precision
// steps), the main loop drives the top level's clk itself, low from time 0 and toggling
// every N steps, at the start of a time step before cocotb's timed callbacks, where cocotb's
// GPI clock (impl="gpi") writes it. The edges are the GPI clock's, at the same times and in
// the same phase of the time step; what goes is the per-half-period timer callback, its
// re-registration and the VPI write (cosim/hardware/backends.py, issue 11's bench).
// A second addition: backdoor access to the harness's job and result memories
// (pi_cosim_write_jobs, pi_cosim_read_results below), which the cocotb test calls through
// ctypes (the binary is linked with -rdynamic) instead of one VPI access per record.
// SPDX-License-Identifier: BSD-3-Clause

#include <libgen.h>  // basename
#include <stdio.h>   // stderr, fprintf

#include <memory>  // std::unique_ptr
#include <string>  // std::string

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
#include "verilated_vpi.h"

#ifndef VM_TRACE_FST
// emulate new verilator behavior for legacy versions
#define VM_TRACE_FST 0
#endif

#if VM_TRACE
#if VM_TRACE_FST
#include <verilated_fst_c.h>
using verilated_trace_t = VerilatedFstC;
#elif VM_TRACE_SAIF
#include <verilated_saif_c.h>
using verilated_trace_t = VerilatedSaifC;
#else
// VM_TRACE_VCD
#include <verilated_vcd_c.h>
using verilated_trace_t = VerilatedVcdC;
#endif
static verilated_trace_t *tfp;
#endif

static vluint64_t main_time = 0;  // Current simulation time
#if VM_COVERAGE
static bool coverage_per_instance = false;
#endif

double sc_time_stamp() {  // Called by $time in Verilog
    return main_time;     // converts to double, to match
                          // what SystemC does
}

extern "C" {
void vlog_startup_routines_bootstrap(void);
}

// --- backdoor access to the harness's memories (pi-cosim) ---------------------------------
// Records are passed as little-endian 32-bit words, pi_cosim_record_words(m) per record
// (m = 0: the job memory, 1: the result memory): the layout of Verilator's VlWide storage.
// Called by the cocotb test (cosim.hardware.cocotb_replay) between clock edges, where it
// would otherwise write or read the same memories through VPI: the job memory is read by
// the harness only at its FETCH phase after `start`, the result memory written only while
// `done` is low.
static Vtop *pi_cosim_top = nullptr;

#define PI_COSIM_JOBS (pi_cosim_top->rootp->pi_cosim_harness__DOT__jobs)
#define PI_COSIM_RESULTS (pi_cosim_top->rootp->pi_cosim_harness__DOT__results)

extern "C" int pi_cosim_record_words(int memory) {
    return memory ? sizeof(PI_COSIM_RESULTS[0]) / sizeof(EData)
                  : sizeof(PI_COSIM_JOBS[0]) / sizeof(EData);
}

extern "C" int pi_cosim_depth(int memory) {
    return memory ? sizeof(PI_COSIM_RESULTS) / sizeof(PI_COSIM_RESULTS[0])
                  : sizeof(PI_COSIM_JOBS) / sizeof(PI_COSIM_JOBS[0]);
}

// 0, or -1 (nothing done) when count is not within the memory's depth
extern "C" int pi_cosim_write_jobs(const EData *words, int count) {
    const int n = pi_cosim_record_words(0);
    if (count < 0 || count > pi_cosim_depth(0)) return -1;
    for (int i = 0; i < count; ++i)
        for (int w = 0; w < n; ++w) PI_COSIM_JOBS[i][w] = words[i * n + w];
    return 0;
}

extern "C" int pi_cosim_read_results(EData *words, int count) {
    const int n = pi_cosim_record_words(1);
    if (count < 0 || count > pi_cosim_depth(1)) return -1;
    for (int i = 0; i < count; ++i)
        for (int w = 0; w < n; ++w) words[i * n + w] = PI_COSIM_RESULTS[i][w];
    return 0;
}

static inline bool settle_value_callbacks() {
    bool cbs_called, again;

    // Call Value Change callbacks
    // These can modify signal values so we loop
    // until there are no more changes
    cbs_called = again = VerilatedVpi::callValueCbs();
    while (again) {
        again = VerilatedVpi::callValueCbs();
    }

    return cbs_called;
}

void wrap_up() {
    VerilatedVpi::callCbs(cbEndOfSimulation);

#if VM_TRACE
    if (tfp) {
        // We don't delete the trace object to avoid deadlock in verilator sims.
        tfp->close();
    }
#endif

    // VM_COVERAGE is a define which is set if Verilator is
    // instructed to collect coverage (when compiling the simulation)
#if VM_COVERAGE
    if (coverage_per_instance) {
        Verilated::threadContextp()->coveragep()->forcePerInstance(true);
    }
    VerilatedCov::write();  // Uses +verilator+coverage+file+<filename>,
                            // defaults to coverage.dat
#endif
}

int main(int argc, char **argv) {
#if VM_TRACE_FST
    const char *traceFile = "dump.fst";
#elif VM_TRACE_SAIF
    const char *traceFile = "dump.saif";
#else
    const char *traceFile = "dump.vcd";
#endif
    bool traceOn = false;
    bool traceFlush = false;
    bool coveragePerInstance = false;

    for (int i = 1; i < argc; i++) {
        std::string arg = std::string(argv[i]);
        if (arg == "--coverage-per-instance") {
#if VM_COVERAGE
            coveragePerInstance = true;
#else
            fprintf(stderr,
                    "Error: --coverage-per-instance requires the design to be "
                    "built with coverage support\n");
            return -1;
#endif
        } else if (arg == "--trace") {
#if VM_TRACE
            traceOn = true;
#else
            fprintf(stderr,
                    "Error: --trace requires the design to be built with trace "
                    "support\n");
            return -1;
#endif
        } else if (arg == "--trace-flush") {
            traceFlush = true;
        } else if (arg == "--trace-file") {
            if (++i < argc) {
                traceFile = argv[i];
            } else {
                fprintf(stderr, "Error: --trace-file requires a parameter\n");
                return -1;
            }
        } else if (arg == "--help") {
            fprintf(
                stderr,
                "usage: %s [--coverage-per-instance] [--trace] [--trace-flush] "
                "[--trace-file TRACEFILE]\n"
                "\n"
                "cocotb + Verilator sim\n"
                "\n"
                "options:\n"
                "  --coverage-per-instance  Force per-instance coverage "
                "(requires coverage build)\n"
                "  --trace                  Enable tracing (VCD, SAIF or FST)\n"
                "  --trace-flush            Flush trace at each time step "
                "(slow)\n"
                "  --trace-file             Specify the trace file name (%s by "
                "default)\n",
                basename(argv[0]), traceFile);
            return 0;
        }
    }

    Verilated::commandArgs(argc, argv);
#if VM_COVERAGE
    coverage_per_instance = coveragePerInstance;
#endif
#ifdef VERILATOR_SIM_DEBUG
    Verilated::debug(99);
#endif
    std::unique_ptr<Vtop> top(new Vtop(""));
    pi_cosim_top = top.get();
    // the clock driven here (0: cocotb drives every input, as in cocotb's main)
    vluint64_t half_period = 0;
    const std::string period_arg =
        Verilated::commandArgsPlusMatch("pi_cosim_half_period=");
    if (!period_arg.empty()) {
        half_period = std::stoull(period_arg.substr(period_arg.find('=') + 1));
        top->clk = 0;
    }
    vluint64_t next_edge = half_period;
    Verilated::fatalOnVpiError(false);  // otherwise it will fail on systemtf

#ifdef VERILATOR_SIM_DEBUG
    Verilated::internalsDump();
#endif

#if VM_TRACE
    Verilated::traceEverOn(true);
    if (traceOn) {
        tfp = new verilated_trace_t;
        top->trace(tfp, 99);
        tfp->open(traceFile);
    }
#endif

    vlog_startup_routines_bootstrap();
    Verilated::addExitCb([](void *) { wrap_up(); }, nullptr);
    VerilatedVpi::callCbs(cbStartOfSimulation);
    settle_value_callbacks();

    while (!Verilated::gotFinish()) {
        do {
            // We must evaluate whole design until we process all 'events' for
            // this time step
            do {
                top->eval_step();
                VerilatedVpi::clearEvalNeeded();
                VerilatedVpi::doInertialPuts();
                settle_value_callbacks();
            } while (VerilatedVpi::evalNeeded());

            // Run ReadWrite callback as we are done processing this eval step
            VerilatedVpi::callCbs(cbReadWriteSynch);
            VerilatedVpi::doInertialPuts();
            settle_value_callbacks();
        } while (VerilatedVpi::evalNeeded());

        top->eval_end_step();

        // Call ReadOnly callbacks
        VerilatedVpi::callCbs(cbReadOnlySynch);

#if VM_TRACE
        if (tfp) {
            tfp->dump(main_time);
            if (traceFlush) {
                tfp->flush();
            }
        }
#endif
        // cocotb controls the clock inputs using cbAfterDelay so
        // skip ahead to the next registered callback
        const vluint64_t NO_TOP_EVENTS_PENDING = static_cast<vluint64_t>(~0ULL);
        vluint64_t next_time_cocotb = VerilatedVpi::cbNextDeadline();
        vluint64_t next_time_timing =
            top->eventsPending() ? top->nextTimeSlot() : NO_TOP_EVENTS_PENDING;
        vluint64_t next_time = std::min(next_time_cocotb, next_time_timing);
        if (half_period) {
            next_time = std::min(next_time, next_edge);
        }

        // If there are no more cbAfterDelay callbacks,
        // the next deadline is max value, so end the simulation now
        if (next_time == NO_TOP_EVENTS_PENDING) {
            break;
        } else {
            main_time = next_time;
        }

        // Call registered NextSimTime
        // It should be called in simulation cycle before everything else
        // but not on first cycle
        VerilatedVpi::callCbs(cbNextSimTime);
        settle_value_callbacks();

        if (half_period && main_time == next_edge) {  // the clock's edge
            top->clk = !top->clk;
            next_edge += half_period;
        }

        // Call registered timed callbacks (e.g. clock timer)
        // These are called at the beginning of the time step
        // before the iterative regions (IEEE 1800-2012 4.4.1)
        VerilatedVpi::callTimedCbs();
        settle_value_callbacks();
    }

    top->final();

    wrap_up();

#if VM_TRACE
    if (tfp) {
        delete tfp;
        tfp = nullptr;
    }
#endif

    // Fail the sim if any assertion/error fired during the run.
    if (Verilated::threadContextp()->errorCount() > 0) {
        return 1;
    }

    return 0;
}
