"""The study stages of a prediction: read and check the input once, before any model, then find the beat, the
source and target frames and their keypoints on the loop's labels."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from echokdm.defaults import N_KEYPOINTS, PREDICT_BYTES_PER_PIXEL
from echokdm.errors import InputError
from echokdm.labels import camus_labels
from echokdm.predict.options import PredictOptions

if TYPE_CHECKING:
    import torch
    from pydicom.dataset import Dataset

    from echokdm.models.prior import KeypointPrior
    from echokdm.phases import Phases


@dataclass
class StudyInput:
    """The input of one prediction, read once and checked before any model loads.

    Attributes:
        options: what to predict.
        frames: (T, H, W) float32 loop in [0, 1], T >= 2.
        meta: the loop's metadata (:func:`echokdm.io.read_cine`).
        sector: (H, W) bool sector mask.
        name: the input's file name, for messages.
        header: DICOM header without pixel data (lent to ``prediction.dcm``), None for other inputs.
        sha256: sha256 of the input file, None when the loop does not come from one file.
        labels: (T, H, W) uint8 CAMUS labels of ``options.seg``, None for the built-in segmenter.
        target_keypoints: (40, 2) or (20, 2) keypoints of ``options.keypoints``, or None.
        seconds: time the read took.
    """

    options: PredictOptions
    frames: np.ndarray
    meta: dict[str, Any]
    sector: np.ndarray
    name: str
    header: Dataset | None
    sha256: str | None
    labels: np.ndarray | None
    target_keypoints: np.ndarray | None
    seconds: float

    @property
    def spacing(self) -> tuple[float, float] | None:
        """(dy, dx) pixel spacing in mm, or None."""
        sp = self.meta.get("spacing_mm")
        return tuple(sp) if sp else None


@dataclass
class Study:
    """What the loop's labels show: the beat, the source and target frames and their keypoints.

    Attributes:
        input: the input.
        labels: (T, H, W) uint8 CAMUS labels of every frame.
        phases: ED/ES frames of the loop.
        beat: (ED, ES) frames of the beat used.
        source_frame: index of the source frame.
        target_frame: index of the real target frame, None when the target is not observed in the loop.
        source_is_ed: whether the source is the ED frame.
        source_kps: (40, 2) keypoints (x, y) of the source frame.
        target_kps: (40, 2) the keypoints the prediction is asked to show.
        real_target_kps: (40, 2) keypoints of the real target frame, or None.
        beat_kps: keypoints of the beat's ED and ES frames.
    """

    input: StudyInput
    labels: np.ndarray
    phases: Phases
    beat: tuple[int, int]
    source_frame: int
    target_frame: int | None
    source_is_ed: bool
    source_kps: np.ndarray
    target_kps: np.ndarray
    real_target_kps: np.ndarray | None
    beat_kps: tuple[np.ndarray, np.ndarray]


def check_memory(n_frames: int, size: tuple[int, ...]) -> None:
    """Refuse, before any work, a sequence whose frames would need more than half of the available memory
    (:data:`~echokdm.defaults.PREDICT_BYTES_PER_PIXEL` per source pixel and predicted frame).

    Raises:
        InputError: naming the need and what is available.
    """
    need = n_frames * int(np.prod(size)) * PREDICT_BYTES_PER_PIXEL
    available = available_memory()
    if available is not None and need > available // 2:
        raise InputError(
            f"{n_frames} predicted frames of {size[-1]}x{size[-2]} need about {need / 2**30:.1f} GiB of memory; "
            f"{available / 2**30:.1f} GiB are available: ask for fewer frames"
        )


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def read_input(cine: str | os.PathLike | torch.Tensor, options: PredictOptions | None = None) -> StudyInput:
    """Read and check everything a prediction is given: the loop (its DICOM header and sha256 from the same read)
    and the files of ``options`` (``--keypoints``, ``--seg``).

    Args:
        cine: a DICOM cine (or any :func:`echokdm.io.load_cine` input), or the (1, T, H, W) ``MetaTensor``
            that :func:`~echokdm.io.load_cine` / :class:`~echokdm.transforms.LoadCineLoop` made of one.
        options: what to predict (default: ED -> ES).

    Raises:
        InputError: everything :func:`echokdm.io.load_cine` rejects, a single frame, a source frame beyond the
            loop, an unusable keypoint file, a segmentation that does not fit the loop or shows no beat.
    """
    from echokdm.io import CineFile, load_cine_file, loop_spacing, read_segmentation, require_loop

    t0 = time.perf_counter()
    opts = options or PredictOptions()
    torch = sys.modules.get("torch")  # a loaded loop is a tensor, so torch is imported; a file needs no torch yet
    if torch is not None and isinstance(cine, torch.Tensor):
        require_loop(cine, 2)
        read = CineFile.of_loop(cine)
    else:
        read = load_cine_file(cine)
        require_loop(read.loop, 2)
    frames = read.loop[0].numpy()
    check_memory(opts.frames, frames.shape[1:])
    meta = dict(read.loop.meta)
    spacing = loop_spacing(read.loop)  # from the affine: right after MONAI spatial transforms of a given loop
    meta["spacing_mm"] = list(spacing) if spacing else None
    sector = _sector_of(meta, frames)
    target_kps = _read_target_keypoints(opts.keypoints, frames.shape[1:]) if opts.keypoints else None
    if opts.source_frame is not None and opts.source_frame >= len(frames):
        raise InputError(
            f"source frame {opts.source_frame} is beyond the loop's {len(frames)} frames (0-{len(frames) - 1})"
        )
    labels = None
    if opts.seg is not None:
        labels = np.asarray(read_segmentation(opts.seg))
        if labels.shape != frames.shape:
            raise InputError(
                f"segmentation {opts.seg} has shape {_shape(labels)} but the loop has {len(frames)} frames of "
                f"{frames.shape[1]}x{frames.shape[2]} (rows x columns); it must label every frame of this loop"
            )
        labels = camus_labels(labels)
    name = Path(str(meta.get("filename_or_obj", ""))).name
    if labels is not None:  # given labels without a beat are a bad input: say so before any model loads
        _beats(name, labels, meta.get("frame_time_ms"))
    return StudyInput(opts, frames, meta, sector, name, read.header, read.sha256, labels, target_kps,
                      time.perf_counter() - t0)


def find_study(inp: StudyInput, labels: np.ndarray, prior: Callable[[], KeypointPrior]) -> Study:
    """ED/ES from the LV area curve (a beat must be visible), the source and target frames and their keypoints.

    The target keypoints come from the observed target frame (``phase``), the keypoint motion prior on the loop's
    spacing (``target_ef``) or the keypoint file (``keypoints``). Of an observed target frame only the endocardium
    is taken, and the wall moves with it from the source's keeping its area
    (:func:`echokdm.keypoints.move_epicardium`, as for a file of 20 endocardial keypoints): on real loops the
    segmented wall of a second frame is less reliable than its cavity (on the bundled SonoSite loop its ES wall
    reads 1.39 times its ED wall), and the spline through such a wall drags the cavity's border with it
    (docs/predict.md, "The target's wall").

    Args:
        inp: the input.
        labels: (T, H, W) uint8 CAMUS labels of every frame.
        prior: gives the keypoint motion prior (called only for ``target_ef``).

    Raises:
        InputError: no visible beat, a frame without usable LV, target keypoints outside the image or degenerate.
    """
    phases, beats = _beats(inp.name, labels, inp.meta.get("frame_time_ms"))
    opts = inp.options
    src, beat, target = _frames(opts, phases, beats)
    kp = _keypoints_of(labels)
    source_kps = kp(src)
    beat_kps = (kp(beat[0]), kp(beat[1]))
    real_target = kp(target) if target is not None else None
    from echokdm.keypoints import move_epicardium

    if opts.mode == "phase":  # the observed endocardium; the wall moves with it (see above)
        target_kps = move_epicardium(source_kps, real_target[:20])
    elif opts.mode == "target_ef":
        target_kps = prior()(source_kps, target_ef=opts.target_ef, spacing_mm=inp.spacing)
    elif len(inp.target_keypoints) == 20:  # endocardium only (an EchoNet-style tracing): the wall moves with it
        target_kps = move_epicardium(source_kps, inp.target_keypoints)
    else:
        target_kps = inp.target_keypoints
    _check_inside(target_kps, inp.frames.shape[1:])
    source_is_ed = opts.phase != "ed"
    from echokdm.metrics import ef_between

    ef_between(source_kps, target_kps, source_is_ed, inp.spacing)  # degenerate target keypoints fail here
    return Study(inp, labels, phases, beat, int(src), target, source_is_ed, source_kps,
                 np.asarray(target_kps, dtype=np.float64), real_target, beat_kps)


def _beats(name: str, labels: np.ndarray, frame_time_ms: float | None) -> tuple[Phases, list[tuple[int, int]]]:
    """The phases of the LV area curve of (T, H, W) CAMUS ``labels`` and its (ED, ES) beats (at least one).

    Raises:
        InputError: no visible beat.
    """
    from echokdm.phases import detect_phases

    try:
        phases = detect_phases((labels == 1).sum(axis=(1, 2)), frame_time_ms)
    except InputError as e:
        raise InputError(f"{name}: no detectable heart beat: {e}") from None
    beats = phases.beats or [(e, min(phases.es, key=lambda s: abs(s - e))) for e in phases.ed if phases.es]
    if not beats:
        raise InputError(
            f"{name}: no detectable heart beat: the LV area curve shows ED frames {phases.ed} and ES frames "
            f"{phases.es}; predict needs a loop with both"
        )
    return phases, beats


def _frames(
    opts: PredictOptions, phases: Phases, beats: list[tuple[int, int]]
) -> tuple[int, tuple[int, int], int | None]:
    """(source frame, its beat, target frame or None); ``beats`` are (ED, ES) pairs."""
    src = opts.source_frame
    if src is None:
        beat = beats[0]
        src = beat[1] if opts.phase == "ed" else beat[0]
    else:
        beat = min(beats, key=lambda b: (0 if min(b) <= src <= max(b) else 1, abs(b[0] - src)))
    target = None
    if opts.mode == "phase":
        if opts.source_frame is None:
            target = beat[0] if opts.phase == "ed" else beat[1]
        else:
            candidates = [f for f in (phases.ed if opts.phase == "ed" else phases.es) if f != src]
            if not candidates:
                raise InputError(f"the loop shows no {opts.phase.upper()} frame other than the source frame {src}")
            target = min(candidates, key=lambda f: (abs(f - src), -f))
    return src, beat, target


def _sector_of(meta: dict[str, Any], frames: np.ndarray) -> np.ndarray:
    mask = meta.get("sector_mask")
    if mask is None or np.shape(mask) != frames.shape[1:]:  # none, or the file's grid before a spatial transform
        from echokdm.io.sector import sector_mask

        mask = sector_mask((frames * 255).round().astype(np.uint8))
    return np.asarray(mask, dtype=bool)


def _shape(a: np.ndarray) -> str:
    return "x".join(str(s) for s in a.shape)


def _keypoints_of(labels: np.ndarray) -> Callable[[int], np.ndarray]:
    """The keypoints of a frame of ``labels``, each frame extracted once (the source is also its beat's ED or ES)."""
    from echokdm.keypoints import extract_keypoints

    found: dict[int, np.ndarray] = {}

    def kp(frame: int) -> np.ndarray:
        if frame not in found:
            try:
                found[frame] = extract_keypoints(labels[frame], N_KEYPOINTS)
            except InputError as e:
                raise InputError(f"frame {frame}: {e}") from None
        return found[frame].copy()

    return kp


def _read_target_keypoints(path: str, shape: tuple[int, int]) -> np.ndarray:
    """The target keypoints of a keypoint file: its only frame, else its first frame marked ES."""
    from echokdm.keypoints import load_keypoints

    track = load_keypoints(path)
    if track.image_size is not None and tuple(track.image_size) != tuple(shape):
        raise InputError(
            f"keypoint file {path} is for {track.image_size[0]}x{track.image_size[1]} images, "
            f"the loop's are {shape[0]}x{shape[1]}"
        )
    if len(track.frames) == 1:
        return track.keypoints[0]
    es = [f for f in track.frames if track.phases.get(f) == "ES"]
    if not es:
        raise InputError(
            f"keypoint file {path} holds {len(track.frames)} frames and none is marked ES; keep only the target frame"
        )
    return track[es[0]]


def _check_inside(kps: np.ndarray, shape: tuple[int, int]) -> None:
    h, w = shape
    k = np.asarray(kps)
    bad = np.flatnonzero((k[:, 0] < -0.5) | (k[:, 0] > w - 0.5) | (k[:, 1] < -0.5) | (k[:, 1] > h - 0.5))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"target keypoint {i} at ({k[i, 0]:.1f}, {k[i, 1]:.1f}) lies outside the {w}x{h} image")
