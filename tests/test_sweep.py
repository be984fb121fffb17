"""The sweep campaign (cosim/campaign/sweep.py, pi-cosim sweep / merge): small modes through
the RTL (the native Verilator server; Icarus once, for backend agreement) and the KVM model,
classes checked against the characterizations, determinism, shards and merging."""

import json
import subprocess
import sys

import pytest

from cosim.campaign import sweep
from cosim.scenario import sweep as domain
from cosim.scenario.format import ROUTES
from cosim.scenario.sweep import Axis, Mode, Part
from software_model import KernelVersion

from .conftest import require_simulator

PRE, POST, NOV = KernelVersion.PRE_PATCH, KernelVersion.POST_PATCH, KernelVersion.NOV_2024
NATIVE = "verilator-native"


#: A small decision cross around the seed: vectors of three classes, NV equal to some of
#: them, L1 PPR classes below, at and above them, every route.
SMALL = Mode("small", (Part(
    "small", "a small decision cross",
    (Axis("vector", (0x3E, 0x41, 0xE2), "three vectors"),
     Axis("nv_low", (0x3E, 0x41, 0xF2), "NV[7:0]"),
     Axis("ppr", (("tpr", 0), ("tpr", 3), ("tpr", 4), ("tpr", 15)), "PPR classes"),
     Axis("route", ROUTES, "routes")),
    domain.DECISION.make),))


def _run(mode=SMALL, **kw):
    kw.setdefault("workers", 1)
    return sweep.run(mode, kw.pop("sim", NATIVE), list(KernelVersion), **kw)


def _bytes(result) -> bytes:
    return json.dumps(result.document, indent=1).encode()


@pytest.fixture(scope="module")
def small(native):
    return _run()


def test_every_class_is_exactly_its_characterization(small):
    doc = small.document
    assert doc["points"] == 108 and doc["hardware_jobs"] == 36  # the routes share a job
    assert doc["mismatches"] == []
    for version, data in doc["versions"].items():
        assert all(c["members"] == c["predicted"] == c["both"] for c in data["check"].values())
        assert sweep.UNEXPLAINED not in data["classes"], version


def test_pre_patch_differs_exactly_where_the_patch_says(small):
    """KB1 on pre-patch: vector = NV, class above the PPR class, posted interrupts on, not a
    trapped IPI; KB3 (all versions): the trapped IPI of NV at or below the PPR class."""
    doc = small.document
    kb1 = {(d["point"]["vector"], d["point"]["ppr_class"], d["point"]["route"])
           for d in doc["divergent"] if d["class"] == "known bug KB1"}
    assert {d["kvm"] for d in doc["divergent"] if d["class"] == "known bug KB1"} == {"pre-patch"}
    want = {(v, c, r) for v in (0x3E, 0x41) for c in (0, 3, 4, 15) for r in ("ipiv", "device-post")
            if v >> 4 > c}
    assert kb1 == want == {(0x3E, 0, "ipiv"), (0x3E, 0, "device-post"), (0x41, 0, "ipiv"),
                           (0x41, 0, "device-post"), (0x41, 3, "ipiv"),
                           (0x41, 3, "device-post")}
    for version in ("pre-patch", "post-patch", "nov-2024"):
        kb3 = {(d["point"]["vector"], d["point"]["ppr_class"]) for d in doc["divergent"]
               if d["class"] == "known bug KB3" and d["kvm"] == version}
        assert kb3 == {(0x3E, 3), (0x3E, 4), (0x3E, 15), (0x41, 4), (0x41, 15)}
    seed = next(d for d in doc["divergent"] if d["class"] == "known bug KB1")
    assert seed["point"]["vector"] == seed["point"]["nv"] == 0x3E
    assert seed["differences"]["vmexit"] == "KB1"
    assert seed["differences"]["rest:lost.l1_delivered"] == "KB1"  # 0x3e reached L1
    assert doc["versions"]["post-patch"]["classes"] == {"agree": 103, "known bug KB3": 5}


def test_a_wrong_characterization_is_a_mismatch(native, monkeypatch):
    """Drop KB1's characterization: its points become mismatches and the run fails."""
    kept = tuple(c for c in sweep.CHARACTERIZATIONS if c.label != "known bug KB1")
    monkeypatch.setattr(sweep, "CHARACTERIZATIONS", kept)
    result = _run()
    assert not result.ok
    assert {(m["kvm"], m["class"], m["expected"]) for m in result.document["mismatches"]} == {
        ("pre-patch", "known bug KB1", "agree")}
    check = result.document["versions"]["pre-patch"]["check"]["known bug KB1"]
    assert check == {"members": 6, "predicted": 0, "both": 0}


def test_same_input_same_bytes_whatever_the_workers(small, native):
    assert _bytes(_run()) == _bytes(small)
    assert _bytes(_run(workers=2)) == _bytes(small)


def test_shards_merge_into_the_document_one_run_writes(small, native):
    shards = [_run(shard=(k, 3)) for k in (1, 2, 3)]
    assert [s.document["points"] for s in shards] == [36, 36, 36]
    merged = sweep.merge([(f"s{k}", s.document) for k, s in enumerate(shards, 1)])
    assert _bytes(merged) == _bytes(small)
    # in any order
    merged = sweep.merge([(f"s{k}", shards[k - 1].document) for k in (3, 1, 2)])
    assert _bytes(merged) == _bytes(small)


def test_merge_refuses_what_does_not_belong_together(native):
    a, b = (_run(shard=(k, 2)).document for k in (1, 2))
    with pytest.raises(sweep.MergeError, match=r"shards missing: 2/2"):
        sweep.merge([("a", a)])
    with pytest.raises(sweep.MergeError, match=r"b: shard 1/2 is also a"):
        sweep.merge([("a", a), ("b", a)])
    for key, what in (("design", "another version of the design"),
                      ("model", "another version of the KVM model"), ("seed", "another seed"),
                      ("sim", "another sim")):
        other = {**b, key: "x" if key != "seed" else 7}
        with pytest.raises(sweep.MergeError, match=f"b: {what}"):
            sweep.merge([("a", a), ("b", other)])


def test_entry_checks_fail_on_both_sides(native):
    """Every invalid control combination, and NV bits 15:8 with posted interrupts: the
    hardware refuses the VM entry (else the class is 'VM entry not refused') and KVM fails it
    with the same VM-instruction error."""
    result = _run(domain.mode("default", ("entry",)))
    doc = result.document
    assert doc["points"] == 12 and result.ok
    for data in doc["versions"].values():
        assert data["classes"] == {"agree": 12}


def test_the_default_mode_finds_the_known_bugs_where_its_characterizations_say(native):
    """One point in 200 of the 'context' and 'controls' parts (the PIR/ON states, PPR made by
    an in-service vector, the other control combinations): KB1, KB3, KB4 and KB8 exactly
    where predicted, nothing unexplained."""
    picked = domain.mode("default", ("context", "controls"))
    points = [p for p in picked.points() if p.index % 200 == 0]
    few = Mode("sample", (Part("sample", "every 200th point", (Axis(
        "point", tuple(points), "sampled"),), _same),))
    doc = _run(few).document
    assert doc["mismatches"] == []
    classes = {v: set(d["classes"]) for v, d in doc["versions"].items()}
    assert "known bug KB8" in classes["pre-patch"] and "known bug KB8" not in classes["nov-2024"]
    assert "known bug KB4" in classes["post-patch"]


def _same(index, part, point):
    return point


@pytest.fixture
def cli_run(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "cosim", *args], capture_output=True,
                              text=True, cwd=tmp_path)
    return run


def test_cli_sweep_writes_the_result_and_says_what_it_covers(native, cli_run, tmp_path):
    done = cli_run("sweep", "--part", "entry", "--sim", NATIVE, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "sweep default:entry: 12 points per KVM version" in done.stdout
    assert "VM-entry checks" in done.stdout and "matches exactly" in done.stdout
    doc = json.loads((tmp_path / "reports" / "sweep.json").read_text())
    assert doc["format"] == sweep.FORMAT and doc["points"] == 12
    listed = cli_run("sweep", "--list")
    assert listed.returncode == 0 and "3,381,132 points" in listed.stdout
    assert "2,949,120 points = 240 x 256 x 16 x 3" in listed.stdout


def test_cli_merge_of_cli_shards(native, cli_run, tmp_path):
    for k in (1, 2):
        done = cli_run("sweep", "--part", "entry", "--sim", NATIVE, "--shard", f"{k}/2",
                       "--workers", "1", "--out", "shards")
        assert done.returncode == 0, done.stderr
    files = sorted(str(p) for p in (tmp_path / "shards").glob("sweep.shard-*-of-2.json"))
    assert len(files) == 2
    merged = cli_run("merge", *files, "--out", "merged")
    assert merged.returncode == 0, merged.stderr
    whole = cli_run("sweep", "--part", "entry", "--sim", NATIVE, "--workers", "2")
    assert whole.returncode == 0
    assert (tmp_path / "merged" / "sweep.json").read_bytes() == (
        tmp_path / "reports" / "sweep.json").read_bytes()
    bad = cli_run("merge", files[0], "--out", "merged")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "shards missing: 2/2" in bad.stderr


@pytest.mark.parametrize("args,message", [
    (["--shard", "3/2"], "invalid shard '3/2': K/N with 1 <= K <= N"),
    (["--shard", "x"], "invalid shard 'x'"),
    (["--part", "nope"], "--part nope: no such part of the default mode; parts: decision, "
                         "context, controls, entry"),
    (["--workers", "0"], "invalid worker count '0'"),
])
def test_cli_sweep_bad_arguments(cli_run, args, message):
    done = cli_run("sweep", *args)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.parametrize("sim", ["icarus", "amaranth"])
def test_other_backends_give_the_same_document(small, sim):
    """The same points through cocotb + Icarus and amaranth.sim: the same document but for
    the backend's name (amaranth.sim on the entry checks and a slice, it is slow)."""
    require_simulator(sim)
    if sim == "amaranth":
        reference = _run(shard=(1, 12))
        doc = _run(shard=(1, 12), sim=sim).document
        assert {**doc, "sim": NATIVE} == reference.document
    else:
        doc = _run(sim=sim).document
        assert {**doc, "sim": NATIVE} == small.document


def test_an_entry_the_hardware_does_not_refuse_is_a_mismatch(native, monkeypatch):
    """The entry checks' claim is checked on the hardware too: a hardware side that entered L2
    (here: KVM's runs with the VM-entry error taken away) is class 'VM entry not refused'."""
    from dataclasses import replace

    from cosim.reference.kvm import run_model

    def entered(jobs, sim):
        sides = [run_model(job.scenario, POST, own_modes=False).side for job in jobs]
        return [replace(s, outcomes=(replace(s.outcomes[0], vmentry_error=None),)) for s in sides]

    monkeypatch.setattr(sweep, "hardware_sides", entered)
    doc = _run(domain.mode("default", ("entry",))).document
    assert {m["class"] for m in doc["mismatches"]} == {sweep.ENTRY_NOT_REFUSED}
    assert len(doc["mismatches"]) == 12 * 3


def test_progress_says_points_rate_and_time_left():
    import io

    stream = io.StringIO()
    show = sweep.progress_printer(stream)
    show(1_000, 4_000, 2.0)
    show(4_000, 4_000, 8.0)
    text = stream.getvalue()
    assert "\r  1,000 / 4,000 points (25.0 %), 500 points/s, 0 min 06 s left" in text
    assert text.endswith("4,000 / 4,000 points (100.0 %), 500 points/s, 0 min 00 s left   \n")


def test_a_merge_keeps_the_shards_fingerprints(native):
    """Shards made by another checkout merge into a document that says so (the merging
    process's own design and model do not matter)."""
    docs = [{**_run(shard=(k, 2)).document, "model": "from-elsewhere"} for k in (1, 2)]
    assert sweep.merge([("a", docs[0]), ("b", docs[1])]).document["model"] == "from-elsewhere"
