"""Keypoints, phases and EF on phantom loops against the phantom's exact truth."""

import numpy as np
import pytest

from echokdm.errors import EchoKDMError
from echokdm.metrics import measure_loop
from echokdm.phantom import sample_params, simulate, split_seeds


@pytest.fixture(scope="module")
def loops():
    """The first three validation loops that fit their sector (small: 128 x 128, 24 frames)."""
    out = []
    for seed in split_seeds("val", 20):
        try:
            out.append(simulate(sample_params(seed, height=128, width=128, n_frames=24)))
        except EchoKDMError:
            continue
        if len(out) == 3:
            return out
    raise AssertionError("fewer than 3 of 20 phantom loops could be simulated")


@pytest.mark.parametrize("i", range(3))
def test_phases_and_ef_match_the_phantom(loops, i):
    loop = loops[i]
    lm = measure_loop(loop.labels, 40 if i == 0 else 20, loop.spacing_mm, loop.frame_time_ms)
    found = dict(lm.phases.beats)
    for ed, es in zip(loop.ed, loop.es):  # every true beat is found, ED and ES within one frame
        e = min(found, key=lambda f: abs(f - ed))
        assert abs(e - ed) <= 1 and abs(found[e] - es) <= 1, (loop.ed, loop.es, lm.phases.beats)
    beat = next(b for b in lm.beats() if abs(b["ed"] - loop.ed[0]) <= 1)
    assert beat["ef_area_length"] == pytest.approx(loop.ef, abs=2.0)  # the phantom's EF is area-length
    assert beat["ef_simpson"] == pytest.approx(loop.ef, abs=2.5)
    assert beat["gls"] < 0
    assert np.all(np.isfinite(lm.keypoints))
