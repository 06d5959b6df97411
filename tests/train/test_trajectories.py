"""Keypoint trajectories ED -> ES for the motion prior (``pipelines/fit_prior.py --data``): each beat of a loop from
the segmenter's labels, on a phantom loop whose truth is known, and over the cines of a data set."""

from __future__ import annotations

import numpy as np
import pytest

from echokdm.keypoints import extract_keypoints
from echokdm.metrics import ef_from_keypoints
from echokdm.phantom import sample_params, simulate
from echokdm.phantom.layouts import generate
from echokdm.train.sources import SourceConfig
from echokdm.train.trajectories import beat_trajectories, source_trajectories


@pytest.fixture(scope="module")
def loop():
    return simulate(sample_params(4, size=96, frames=24, n_beats=2))


def truth(lp):
    """A segmenter that returns the phantom loop's own labels, whatever the frames."""
    return lambda frames, *, sector_mask, frame_time_ms=None, **_: lp.labels[: len(frames)]


def test_each_beat_runs_from_its_ed_keypoints_to_its_es_keypoints(loop):
    beats = beat_trajectories(truth(loop), loop.frames, loop.sector_mask, loop.frame_time_ms)
    pairs = [(ed, min(es for es in loop.es if es > ed)) for ed in loop.ed if any(es > ed for es in loop.es)]
    assert len(beats) == len(pairs) >= 1
    for traj, (ed, es) in zip(beats, pairs):
        # ED and ES found on the LV area curve: the phantom's own (by volume) or a neighbour, every frame between
        assert traj.shape[1:] == (40, 2) and abs(len(traj) - (es - ed + 1)) <= 2
        for kps, near in ((traj[0], ed), (traj[-1], es)):
            assert any(np.allclose(extract_keypoints(loop.labels[t], 40), kps)
                       for t in range(max(near - 1, 0), min(near + 2, len(loop.labels))))
        assert abs(ef_from_keypoints(traj[0], traj[-1]) - loop.ef) < 8


def test_a_loop_without_ed_and_es_gives_no_trajectory(loop):
    still = lambda frames, **_: np.repeat(loop.labels[:1], len(frames), axis=0)  # noqa: E731
    assert beat_trajectories(still, loop.frames, loop.sector_mask, loop.frame_time_ms) == []


def test_a_data_sets_training_cines_give_their_beats(loop, tmp_path):
    import pandas as pd

    generate(tmp_path / "echonet", 2, "echonet", frames=24)
    beats, n = source_trajectories(SourceConfig("echonet", str(tmp_path / "echonet"), "all"), truth(loop))
    # each video's beats: the loop's labels at the video's frame rate (a beat needs ED -> ES >= MIN_SYSTOLE_MS)
    fps = pd.read_csv(tmp_path / "echonet" / "FileList.csv").FPS
    each = [beat_trajectories(truth(loop), loop.frames, loop.sector_mask, 1000.0 / f) for f in fps]
    assert n == 2 and len(beats) == sum(map(len, each)) >= 1
    np.testing.assert_allclose(beats[-1], [b for one in each for b in one][-1])
