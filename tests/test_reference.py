"""The KVM model adapter (cosim.reference.kvm): one version's run shared with another only
where the model could not tell them apart."""

from pathlib import Path

from cosim.reference.kvm import run_model, run_models
from cosim.scenario.format import load_scenario
from cosim.scenario.sweep import MODES
from software_model import KernelVersion
from software_model.version import consulted

PRE, POST, NOV = KernelVersion.PRE_PATCH, KernelVersion.POST_PATCH, KernelVersion.NOV_2024
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def _sample():
    """Every shipped scenario and 300 points from each part of the default sweep."""
    scenarios = [load_scenario(p) for p in sorted(SCENARIOS.glob("*.toml"))]
    mode = MODES["default"]
    for offset, part in zip(mode.offsets, mode.parts, strict=True):
        step = max(1, part.size // 300)
        scenarios += [p.scenario() for i in range(offset, offset + part.size, step)
                      for p in mode.points(i, i + 1)]
    return scenarios


def test_shared_runs_equal_each_version_run_alone():
    """Outcomes, drain, races and the model's trace of every step: the same as running each
    version on its own, for every shipped scenario (own modes and beside the hardware) and
    points of every part of the sweep."""
    versions = list(KernelVersion)
    scenarios = _sample()
    assert len(scenarios) > 900
    for own_modes in (True, False):
        for scenario in scenarios if not own_modes else scenarios[:60]:
            alone = {v: run_model(scenario, v, own_modes=own_modes) for v in versions}
            assert run_models(scenario, versions, own_modes=own_modes) == alone, scenario.name


def test_post_patch_shares_pre_patch_unless_the_vector_is_nv():
    """The one switch between pre-patch and post-patch (6e0b456547f4) is asked only for an
    interrupt whose vector is the notification vector: the seed (0xff = NV) runs twice, the
    same interrupt with vector 0x50 once for both; nov-2024 differs in every nested
    VM entry (637df11290b3) and always runs."""
    seed = load_scenario(SCENARIOS / "seed-ipiv.toml")
    other = load_scenario(SCENARIOS / "non-nv-vector.toml")
    with consulted() as asked:
        shared = run_models(other, [PRE, POST, NOV], own_modes=False)
    assert shared[POST].side is shared[PRE].side and shared[POST].version is POST
    assert shared[NOV].side is not shared[PRE].side
    assert "6e0b456547f4" not in {c.commit for c in asked}
    apart = run_models(seed, [PRE, POST], own_modes=False)
    assert apart[POST].side != apart[PRE].side  # KB1: pre-patch exits with the NV
