"""Evaluation tasks: what a predictor is given and what it must produce, built from a :class:`Case`.

- ``es``: the ED frame, its keypoints and the ES keypoints -> the ES frame.
- ``ed``: the reverse, ES -> ED.
- ``sequence``: the ED frame and the keypoints of every frame up to ES -> every frame after ED up to ES.
- ``target-ef``: the ED frame, its keypoints and a requested EF -> the ES frame; the ES keypoints come from
  the keypoint motion prior, and only EF consistency is scored (there is no true image to compare to).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from echokdm.defaults import PRIOR_WEIGHTS
from echokdm.errors import InputError, UnsupportedError
from echokdm.keypoints import LV_MYOCARDIUM
from echokdm.labels import camus_labels
from echokdm.models.prior import KeypointPrior
from echokdm.paths import regular_file
from echokdm.segmenter import Segmenter

if TYPE_CHECKING:
    from echokdm.evaluate.cases import Case

#: the tasks (``echokdm evaluate --task``); this module imports torch only where it computes, so that the command
#: line can offer them without it
TASKS = ("es", "ed", "sequence", "target-ef")

#: range of target EFs (percent) drawn for the target-ef task
TARGET_EF_RANGE = (20.0, 70.0)


@dataclass
class Sample:
    """One prediction problem handed to a predictor.

    Args:
        sample_id: unique name (the case id).
        task: one of :data:`TASKS`.
        source: (H, W) float32 source frame in [0, 1].
        source_labels: (H, W) uint8 CAMUS labels of the source frame.
        source_keypoints: (K, 2) keypoints (x, y) of the source frame.
        target_keypoints: (N, K, 2) keypoints of each frame to predict.
        sector_mask: (H, W) bool.
        spacing_mm: (dy, dx) or None when unknown.
        source_is_ed: whether the source is the ED frame (EF is then measured from source -> last target).
        targets: (N, H, W) true target frames, or None (target-ef).
        target_labels: (N, H, W) uint8 true target label maps, or None (target-ef).
        ddf: (N, 2, H, W) exact pull displacement source -> each target on the target grid, or None.
        target_ef: the requested EF in percent (target-ef task only).
        loop: (T, H, W) float32 the whole loop (for predictors that adapt to it), or None.
        target_frames: loop indices of ``targets`` (what such a predictor must leave out), or None.
        loop_labels: frame index -> (H, W) uint8 labels of the loop's labelled frames, or None.
        prior: the keypoint motion prior that made ``target_keypoints`` (target-ef only), so that a predictor can
            calibrate the request (:func:`echokdm.predict.ef_request.calibrated_keypoints`).
        source_wall_keypoints: (40, 2) the source's keypoints with its wall, for a 20-keypoint sample (the models
            condition on them: :func:`walled_keypoints`); None otherwise or where no wall can be traced.
    """

    sample_id: str
    task: str
    source: np.ndarray
    source_labels: np.ndarray
    source_keypoints: np.ndarray
    target_keypoints: np.ndarray
    sector_mask: np.ndarray
    spacing_mm: tuple[float, float] | None
    source_is_ed: bool = True
    targets: np.ndarray | None = None
    target_labels: np.ndarray | None = None
    ddf: np.ndarray | None = None
    target_ef: float | None = None
    loop: np.ndarray | None = None
    target_frames: list[int] | None = None
    loop_labels: dict[int, np.ndarray] | None = None
    prior: KeypointPrior | None = None
    source_wall_keypoints: np.ndarray | None = None


def load_prior(path: str | os.PathLike | None = None) -> KeypointPrior:
    """The keypoint motion prior: the file at ``path`` (written by ``KeypointMotionPrior.save``, e.g. by
    ``pipelines/fit_prior.py``), else the shipped ``kdm_prior``.

    Raises:
        InputError: ``path`` does not exist, or is not a prior.
        UnsupportedError: no path and no prior shipped with this echokdm.
    """
    from echokdm.models.prior import KeypointMotionPrior
    from echokdm.weights import manifest

    if path is None:
        if PRIOR_WEIGHTS not in manifest():
            raise UnsupportedError(
                "task 'target-ef' needs the keypoint motion prior, and this echokdm ships none yet; "
                "pass --prior FILE (e.g. from pipelines/fit_prior.py) or use --task es, ed or sequence"
            )
        return KeypointMotionPrior.load(PRIOR_WEIGHTS)
    return KeypointMotionPrior.load(regular_file(path, "keypoint motion prior"))


def keypoints_of(labels: np.ndarray, n_keypoints: int) -> np.ndarray:
    """(K, 2) keypoints of a CAMUS label map (``n_keypoints`` 20 or 40)."""
    from echokdm.keypoints import extract_keypoints

    return np.asarray(extract_keypoints(camus_labels(labels), n=n_keypoints), dtype=np.float64)


def wall_keypoints(case: Case, frame: int, myocardium: Segmenter | None) -> np.ndarray:
    """(40, 2) keypoints of ``frame`` of ``case``: from its labels, or, for a cavity-only tracing (no myocardium
    label), the traced endocardium with the wall that ``myocardium`` segments on the frame
    (:func:`echokdm.keypoints.epicardium_from`).

    Raises:
        InputError: a cavity-only tracing and no ``myocardium`` segmenter, or no usable LV.
    """
    from echokdm.keypoints import epicardium_from

    labels = camus_labels(case.labels[frame])
    if (labels == LV_MYOCARDIUM).any():
        return keypoints_of(labels, 40)
    if myocardium is None:
        raise InputError(
            f"case {case.case_id}: 40 keypoints need the LV wall, and frame {frame} is traced without it; "
            "segment it with the built-in segmenter (--segmenter builtin) or use --keypoints 20"
        )
    seg = myocardium(case.frames[frame][None], sector_mask=case.sector_mask, spacing_mm=case.spacing_mm)[0]
    return epicardium_from(keypoints_of(labels, 20), keypoints_of(seg, 40))


def walled_keypoints(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(source (K, 2), targets (N, K, 2)) keypoints of ``sample`` for a model: a 20-keypoint sample with a
    ``source_wall_keypoints`` gets them (K = 40) and each target's wall moved with its endocardium
    (:func:`echokdm.keypoints.move_epicardium`), as ``--keypoints 40`` makes them of cavity-only tracings; any other
    sample's keypoints as they are."""
    from echokdm.keypoints import move_epicardium

    source, targets = sample.source_wall_keypoints, np.asarray(sample.target_keypoints)
    if source is None or targets.shape[1] != 20:
        return sample.source_keypoints, targets
    return source, np.stack([move_epicardium(source, t) for t in targets])


def _source_wall(case: Case, frame: int, myocardium: Segmenter | None) -> np.ndarray | None:
    """:func:`wall_keypoints` of the source, None where no wall can be traced."""
    try:
        return wall_keypoints(case, frame, myocardium)
    except InputError:
        return None


def _target_keypoints(labels: np.ndarray, source_keypoints: np.ndarray, walls_observed: bool = True) -> np.ndarray:
    """Keypoints of a target label map, as many as the source's; the wall of a cavity-only tracing, or of labels
    whose walls are not taken as observed (:attr:`Case.walls_observed`), moves with its endocardium from the
    source's (:func:`echokdm.keypoints.move_epicardium`)."""
    from echokdm.keypoints import move_epicardium

    if len(source_keypoints) == 20 or (walls_observed and (labels == LV_MYOCARDIUM).any()):
        return keypoints_of(labels, len(source_keypoints))
    return move_epicardium(source_keypoints, keypoints_of(labels, 20))


def invert_ddf(ddf: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Inverse of a pull displacement field by fixed-point iteration ``v(q) = -u(q + v(q))``.

    Args:
        ddf: (2, H, W) pull field ``u`` taking image A to B (defined on B's grid).
        iterations: fixed-point steps (the motion of a heart converges in a few).

    Returns:
        (2, H, W) pull field taking B to A, on A's grid.
    """
    import torch

    from echokdm.flow import warp

    u = torch.from_numpy(np.ascontiguousarray(ddf, dtype=np.float32))
    v = -u
    with torch.no_grad():
        for _ in range(iterations):
            v = -warp(u, v)
    return v.numpy()


def target_ef_for(case_id: str, seed: int) -> float:
    """The EF (percent) requested for ``case_id`` in the target-ef task: uniform in :data:`TARGET_EF_RANGE`,
    fixed by the case id and seed."""
    rng = np.random.default_rng([seed, zlib.crc32(case_id.encode())])
    return float(rng.uniform(*TARGET_EF_RANGE))


def make_sample(
    case: Case, task: str, n_keypoints: int = 40, prior: KeypointPrior | None = None, seed: int = 0,
    myocardium: Segmenter | None = None,
) -> Sample:
    """Build the ``task`` sample of ``case``.

    Args:
        case: the case, at the working resolution.
        task: one of :data:`TASKS`.
        n_keypoints: 20 (endocardium) or 40 (endo + epicardium).
        prior: keypoint motion prior (required by ``target-ef``).
        seed: fixes the requested EF of ``target-ef``.
        myocardium: segments the source frame when 40 keypoints are asked of cavity-only tracings (EchoNet-Dynamic):
            the epicardium is then derived (:func:`wall_keypoints`); at 20 keypoints it gives the models' wall
            (``source_wall_keypoints``).

    Returns:
        The sample.

    Raises:
        InputError: unknown task, or the case lacks the labels the task needs (40 keypoints of cavity-only
            tracings without ``myocardium``).
        UnsupportedError: ``target-ef`` without a prior.
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    src_idx = case.es if task == "ed" else case.ed
    source_labels = camus_labels(case.labels[src_idx])
    common = dict(
        sample_id=case.case_id,
        task=task,
        source=case.frames[src_idx].astype(np.float32),
        source_labels=source_labels,
        source_keypoints=keypoints_of(source_labels, 20)
        if n_keypoints == 20
        else wall_keypoints(case, src_idx, myocardium),
        sector_mask=case.sector_mask,
        spacing_mm=case.spacing_mm,
        loop=case.frames,
        loop_labels=case.labels,
    )
    if task == "target-ef":
        if prior is None:
            prior = load_prior()
        ef = target_ef_for(case.case_id, seed)
        tk = np.asarray(prior(common["source_keypoints"], target_ef=ef, spacing_mm=case.spacing_mm), dtype=np.float64)
        return Sample(**common, target_keypoints=tk[None], target_ef=ef, prior=prior)
    if task == "sequence":
        if case.es <= case.ed:
            raise InputError(f"case {case.case_id}: the sequence task needs ES ({case.es}) after ED ({case.ed})")
        idx = list(range(case.ed + 1, case.es + 1))
        missing = [i for i in idx if i not in case.labels]
        if missing:
            raise InputError(
                f"case {case.case_id}: the sequence task needs labels on every frame from ED to ES; "
                f"frames {missing[:5]} have none"
            )
    else:
        idx = [case.ed if task == "ed" else case.es]
    target_labels = np.stack([camus_labels(case.labels[i]) for i in idx])
    ddf = None
    if case.ddf_from_ed is not None:
        ddf = case.ddf_from_ed[idx] if task != "ed" else invert_ddf(case.ddf_from_ed[case.es])[None]
    return Sample(
        **common,
        source_is_ed=task != "ed",
        target_keypoints=np.stack([_target_keypoints(t, common["source_keypoints"], case.walls_observed)
                                   for t in target_labels]),
        targets=case.frames[idx].astype(np.float32),
        target_labels=target_labels,
        ddf=ddf,
        target_frames=idx,
        source_wall_keypoints=_source_wall(case, src_idx, myocardium) if n_keypoints == 20 else None,
    )
