"""Keypoint trajectories ED -> ES of cines: the keypoint motion prior's data from a user's loops.

``pipelines/fit_prior.py --data KIND:PATH`` fits the prior (:class:`echokdm.models.prior.KeypointMotionPrior`)
on these beside the phantom's trajectories; the keypoints are a segmenter's, as ``echokdm predict`` takes them.
"""

from __future__ import annotations

import numpy as np

from echokdm.errors import EchoKDMError, InputError
from echokdm.keypoints import extract_keypoints
from echokdm.labels import camus_labels
from echokdm.phases import detect_phases
from echokdm.progress import progress
from echokdm.segmenter import Segmenter
from echokdm.train.sources import SourceConfig, source_loops


def beat_trajectories(
    segment: Segmenter, frames: np.ndarray, mask: np.ndarray, frame_time_ms: float | None, n_keypoints: int = 40
) -> list[np.ndarray]:
    """The keypoints of every frame ED -> ES of each beat of one loop, from ``segment``'s labels.

    Args:
        segment: labels the loop's frames.
        frames: (T, H, W) float32 frames in [0, 1].
        mask: (H, W) bool sector mask.
        frame_time_ms: time between frames, or None.
        n_keypoints: 20 or 40.

    Returns:
        One (T_b, K, 2) array (x, y) per beat, ED first; none for a loop without a clear ED and ES, and none for a
        beat with a frame whose labels give no keypoints.
    """
    labels = camus_labels(segment(frames, sector_mask=mask, frame_time_ms=frame_time_ms))
    try:
        beats = detect_phases((labels == 1).sum(axis=(1, 2)), frame_time_ms).beats
    except InputError:  # too short, or an LV area that does not change
        return []
    out = []
    for ed, es in beats:
        try:
            out.append(np.stack([np.asarray(extract_keypoints(labels[t], n_keypoints), np.float64)
                                 for t in range(ed, es + 1)]))
        except EchoKDMError:  # a frame without a usable LV
            continue
    return out


def source_trajectories(
    source: SourceConfig, segment: Segmenter, n_keypoints: int = 40
) -> tuple[list[np.ndarray], int]:
    """:func:`beat_trajectories` of every cine of a ``cine-folder``, ``echonet`` or ``camus`` source's split, and
    the number of cines read.

    Raises:
        InputError: as :func:`echokdm.train.sources.source_loops`.
    """
    loops = source_loops(source)
    beats = [t for lp in progress(loops, f"keypoint trajectories of {source.kind} cines")
             for t in beat_trajectories(segment, lp["frames"], lp["mask"], lp["frame_time_ms"], n_keypoints)]
    return beats, len(loops)
