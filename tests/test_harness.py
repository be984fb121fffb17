"""The accelerated harness's job and result formats (``cosim.hardware.harness``,
``cosim.hardware.testbench``): fields come from the layouts, jobs that do not fit are refused
with a clear message, and the harness runs batches larger than its memories."""

from dataclasses import replace
from pathlib import Path

import pytest
from amaranth.lib import data

from cosim.hardware.backends import simulate
from cosim.hardware.harness import JOB, MAX_EVENTS, MAX_POSTS, JobRecord
from cosim.hardware.testbench import (
    JOB_FIELDS,
    MAX_SEED,
    RESULT_FIELDS,
    Job,
    encode,
)
from cosim.scenario.format import L2EoiEvent, Race, load_scenario

SEED = Path(__file__).parent.parent / "scenarios" / "seed-ipiv.toml"


def test_fields_are_the_layouts():
    assert JOB_FIELDS["seed"] == (JOB["seed"].offset, 32, MAX_SEED) and MAX_SEED == 2**32 - 1
    notify = data.Layout.cast(JobRecord)["descriptor"].offset + 256
    assert JOB_FIELDS["descriptor.notify.on"][0] == notify
    assert RESULT_FIELDS["kind"] == (0, 2, 3)  # the decoder reads the kind from bits 1:0
    assert f"events.{MAX_EVENTS - 1}.value" in JOB_FIELDS
    assert f"posts.{MAX_POSTS - 1}.vector" in JOB_FIELDS


def test_encode_places_the_scenario_in_the_record():
    scenario = load_scenario(SEED)
    word = encode(Job(replace(scenario, races=(Race(event=0, cycle=3, vector=0x52),)), seed=7))
    view = JOB.from_bits(word)
    assert view.seed == 7 and view.wait_mask == 3 and view.n_events == 1
    assert view.posted_intr_nv == scenario.vmcs12.posted_intr_nv
    assert view.descriptor.pir == 1 << 0x41 and view.descriptor.notify.on == 1
    assert view.events[0].value == 0xFF
    assert (view.posts[0].valid, view.posts[0].cycle, view.posts[0].vector) == (1, 3, 0x52)
    assert view.posts[1].valid == 0


def test_jobs_that_do_not_fit_are_refused():
    scenario = load_scenario(SEED)
    many = replace(scenario, events=scenario.events + (L2EoiEvent(),) * MAX_EVENTS)
    with pytest.raises(ValueError, match=f"the harness runs 1 to {MAX_EVENTS} events"):
        encode(Job(many))
    posts = tuple(Race(event=0, cycle=c, vector=0x52) for c in range(MAX_POSTS + 1))
    with pytest.raises(ValueError, match=f"at most {MAX_POSTS} concurrent posts"):
        encode(Job(replace(scenario, races=posts)))
    with pytest.raises(ValueError, match="seed = 0x100000000 does not fit"):
        encode(Job(scenario, seed=MAX_SEED + 1))


def test_batches_larger_than_the_memories(monkeypatch):
    """More jobs than the job memory holds, and more records than the result memory keeps
    free: the harness stops, the testbench resumes; the runs equal one job at a time."""
    from cosim.hardware import backends

    scenario = load_scenario(SEED)
    jobs = [Job(scenario, seed=s) for s in range(12)]
    alone = [simulate([job], "amaranth")[0].side for job in jobs[:2]]
    monkeypatch.setattr(backends, "AMARANTH_JOB_DEPTH", 5)
    monkeypatch.setattr(backends, "AMARANTH_RESULT_DEPTH", 1024 + 20)  # ~2 jobs per start
    runs = [run.side for run in simulate(jobs, "amaranth")]
    assert runs[:2] == alone
    assert len(runs) == 12 and len({r.cycles for r in runs}) > 1  # seeds change the cycles
    assert all(r.final == runs[0].final for r in runs)  # ... and not the outcomes


def test_a_job_that_overflows_the_result_memory_runs_again(monkeypatch):
    """With no records kept free, the third job starts with too little room and overflows:
    the jobs before it are kept, it runs again from an empty memory; the runs equal the
    ordinary ones. A job whose records alone do not fit is an error that names it."""
    from cosim.hardware import backends, harness

    scenario = load_scenario(SEED)
    jobs = [Job(scenario, seed=s) for s in range(5)]
    expected = [run.side for run in simulate(jobs, "amaranth")]
    from cosim.hardware.bench import AmaranthHarnessBench

    overflows = []
    get = AmaranthHarnessBench.get

    def spy(self, port):
        value = get(self, port)
        if port == "overflow":
            overflows.append(value)
        return value

    monkeypatch.setattr(AmaranthHarnessBench, "get", spy)
    monkeypatch.setattr(harness, "RESULT_RESERVE", 0)
    monkeypatch.setattr(backends, "AMARANTH_RESULT_DEPTH", 10)  # 4 records a job: 2.5 jobs
    assert [run.side for run in simulate(jobs, "amaranth")] == expected
    assert 1 in overflows  # the path was taken
    monkeypatch.setattr(backends, "AMARANTH_RESULT_DEPTH", 2)  # the job writes 4
    with pytest.raises(RuntimeError, match="job 0: its results alone do not fit"):
        simulate(jobs[:1], "amaranth")
