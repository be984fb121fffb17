"""The outcome record's vector-set helpers (the hot path of every outcome)."""

import random

from cosim.scenario.outcome import bitmap, vectors


def test_vectors_and_bitmap_are_inverse():
    assert vectors(0) == frozenset() and bitmap(()) == 0
    assert vectors(1 | 1 << 255) == {0, 255}
    rng = random.Random(7)
    for _ in range(500):
        chosen = frozenset(rng.sample(range(256), rng.randint(0, 40)))
        assert vectors(bitmap(chosen)) == chosen
