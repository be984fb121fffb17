"""kvm-unit-tests replays (docs/cli.md): all 3568 vmx_posted_interrupts_test cases in
one `pi-cosim replay` invocation per backend, and the test_posted_intr VM-entry checks.

Post-patch and nov-2024 KVM agree with the hardware on every case and every case meets the
test's own expectation; pre-patch KVM shows known bug KB1 (the seed) on every case at the
IPI (the route that found the bug: IPI virtualization), with the nested VM-Exit 0x800000ff,
and nothing unexplained.
"""

import json

import pytest

from cosim.cli import main
from cosim.scenario.kut import posted_interrupts, posted_intr_entry_checks, write_all

SEED_FIELDS = ["vmexit", "mode", "l1_apic.isr", "l1_apic.ppr", "pid.pir", "pid.on"]


@pytest.fixture(scope="module")
def kut_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kut")
    write_all(directory)
    return directory


def test_the_generated_cases():
    cases = list(posted_interrupts())
    assert len(cases) == 16 * (256 - 33) == 3568
    name, text = cases[0]
    assert name == "kut-posted-intr-c00-v0x21.toml"
    assert "vtpr = 0x00" in text and 'kind = "l2_eoi"' in text and "delivered = [0x21]" in text
    name, text = next(c for c in cases if c[0] == "kut-posted-intr-c05-v0x5f.toml")
    # class 5 blocks vector 0x5f: VID_OP_SPIN_IRR, RVI = vector, nothing delivered
    assert "vtpr = 0x50" in text and "l2_eoi" not in text
    assert "virr = [0x5f]\nrvi = 0x5f\nsvi = 0x00\ndelivered = []" in text
    assert len(list(posted_intr_entry_checks())) == 103


def _replay(capsys, files, sim, kvm="all"):
    status = main(["replay", *map(str, files), "--sim", sim, "--kvm", kvm, "--json"])
    return status, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.slow
def test_vmx_posted_interrupts_test_all_cases_one_invocation(kut_dir, capsys, wave_sim):
    # the three backends users replay with (the native server is held to them by test_cosim);
    # amaranth.sim (about 20 cases/s) replays every 16th case: 223, all TPR classes
    sim = wave_sim
    files = sorted(kut_dir.glob("kut-posted-intr-*.toml"))
    assert len(files) == 3568
    if sim == "amaranth":
        files = files[::16]
    status, docs = _replay(capsys, files, sim)
    assert status == 1  # pre-patch diverges
    assert len(docs) == 3 * len(files)
    assert {f.name[16:19] for f in files} == {f"c{c:02}" for c in range(16)}
    by_version = {v: [d for d in docs if d["kvm"] == v]
                  for v in ("pre-patch", "post-patch", "nov-2024")}
    for version in ("post-patch", "nov-2024"):
        assert all(d["agree"] and d["expect_ok"] and not d["deviations"]
                   for d in by_version[version]), version
    for doc in by_version["pre-patch"]:
        post, ipi, *_ = doc["events"]
        assert post["differences"] == []  # the worker's PIR/ON writes
        assert ipi["software"]["vmexit"] == {"reason": 1, "intr_info": 0x800000FF,
                                             "qualification": 0}, doc["scenario"]
        assert ipi["hardware"]["vmexit"] is None
        assert list(ipi["known_bugs"])[:6] == SEED_FIELDS and doc["expect_ok"] is True
        assert doc["known_bugs"] == ["KB1"] and doc["divergences"] == []


def test_posted_intr_entry_checks(kut_dir, capsys, cocotb_sim):
    files = sorted(kut_dir.glob("kut-entry-*.toml"))
    status, docs = _replay(capsys, files, cocotb_sim)
    assert status == 0 and len(docs) == 3 * 103
    assert all(d["agree"] and d["expect_ok"] and not d["deviations"] for d in docs)
    errors = {d["scenario"]: d["events"][0]["hardware"]["vmentry_error"] for d in docs}
    assert errors["kut-entry-01-pi-no-vid"] == 7 and errors["kut-entry-04-pi-vid-ack"] is None
    assert [errors[f"kut-entry-07-nv-bit{i:02d}"] for i in range(16)] == [None] * 8 + [7] * 8
    assert errors["kut-entry-09-desc-bit45"] is None and errors["kut-entry-09-desc-bit46"] == 7
