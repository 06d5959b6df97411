"""What ``echokdm predict`` does: from a cine loop to predicted frames, their flow, segmentation and report.

Stages (each timed, see :attr:`Prediction.timings`):

1. ``load``: the loop (:func:`echokdm.io.load_cine`; at least two frames).
2. ``segment``: CAMUS labels of every frame, from ``--seg`` or the built-in segmenter.
3. ``keypoints``: ED/ES from the LV area curve (a beat must be visible), the source frame (ED by default,
   ES for ``--phase ed``) and 40 keypoints on it; the target keypoints come from the observed target frame
   (``--phase``), the keypoint motion prior (``--target-ef``) or a keypoint file (``--keypoints``).
4. ``prepare``: the sector is mapped onto the models' square working grid (:class:`~echokdm.models.seg.SectorFit`).
5. ``k2f`` / ``f2i``: one K2F run gives the flow; F2I renders a frame for every alpha (``k / N`` for ``--frames N``).
6. ``transfer``: back to the source grid at full resolution by residual transfer: the full-resolution source is
   warped by the up-sampled flow (scaled to source pixels) and the up-sampled residual (generated − warped)
   of the working grid is added; pixels outside the sector stay as the source.
7. ``segment_prediction`` / ``measure``: the built-in segmenter labels the source and every predicted frame on
   their own (no temporal smoothing between them); EF of the prediction is measured between the two, so the
   segmenter's bias cancels; image metrics against the real target frame when there is one.

Files written by :func:`predict_study` into the output folder (see :data:`FILES`): the predicted frame(s) as
a DICOM cine, one PNG per frame, a GIF (source then predictions), ``comparison.png``, the flow as a picture,
``.npy`` and ``.nii.gz``, the segmentation of the prediction (``.nii.gz``), the keypoints used
(``keypoints.json``: edit and pass back with ``--keypoints``), and ``report.json`` (schema
``data_specs/predict_report.schema.json``) with its one-row flat copy ``report.csv``.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from echokdm.errors import InputError, UnsupportedError
from echokdm.outputs import MARKER, OutputDir

if TYPE_CHECKING:
    from echokdm.io.anonymize import Anonymizer

#: keypoints per frame the KDM models and the motion prior use (endocardium + epicardium)
N_KEYPOINTS = 40
#: denoising steps of K2F and F2I by default
DEFAULT_STEPS = 10
#: accepted range of --target-ef (percent)
EF_LIMITS = (5.0, 90.0)
FORMAT = "echokdm-predict-report"
VERSION = 1
FILES = {
    "dicom": "prediction.dcm",
    "frames": "frames",
    "gif": "sequence.gif",
    "comparison": "comparison.png",
    "flow_png": "flow.png",
    "flow_npy": "flow.npy",
    "flow_nifti": "flow.nii.gz",
    "segmentation": "segmentation.nii.gz",
    "keypoints": "keypoints.json",
    "report_json": "report.json",
    "report_csv": "report.csv",
}


@dataclass(frozen=True)
class PredictWeights:
    """The weights a prediction uses: each a shipped name (sha256-checked) or a ``.safetensors`` path."""

    seg: str = "seg_a4c"
    flow_vae: str = "kdm_flow_vae"
    k2f: str = "kdm_k2f"
    f2i: str = "kdm_f2i"
    prior: str = "kdm_prior"

    @classmethod
    def from_dir(cls, folder: str | os.PathLike) -> PredictWeights:
        """Weights files named like the shipped ones (``seg_a4c.safetensors``, ...) in ``folder``.

        Raises:
            InputError: the folder or one of the files is missing.
        """
        root = Path(folder)
        if not root.is_dir():
            raise InputError(f"weights folder {root} does not exist")
        paths = {f.name: root / f"{f.default}.safetensors" for f in fields(cls)}
        missing = [p.name for role, p in paths.items() if role != "prior" and not p.is_file()]
        if missing:
            raise InputError(f"weights folder {root} lacks {', '.join(missing)}")
        return cls(**{role: str(p) for role, p in paths.items()})


@dataclass
class PredictOptions:
    """What to predict (the options of ``echokdm predict``).

    Args:
        phase: ``"es"`` (source ED -> its ES) or ``"ed"`` (source ES -> its ED), the target observed in the loop;
            the default when neither ``target_ef`` nor ``keypoints`` is given is ``"es"``.
        target_ef: the EF (percent, 5–90) the predicted ES should show; keypoints from the motion prior.
        keypoints: a keypoint file (``echokdm metrics`` format, 40 keypoints) with the target keypoints: its only
            frame, or its first frame marked ES.
        frames: number of frames of the sequence source -> target (alphas ``k / frames``); 1 = the target only.
        seg: a segmentation of every frame of the loop, used instead of the built-in segmenter.
        source_frame: source frame index (default: ED of the first beat; ES for ``phase="ed"``).
        steps: denoising steps of K2F and of F2I.
        seed: seed of the sampling noise (same seed, same pixels).
    """

    phase: Literal["es", "ed"] | None = None
    target_ef: float | None = None
    keypoints: str | None = None
    frames: int = 1
    seg: str | None = None
    source_frame: int | None = None
    steps: int = DEFAULT_STEPS
    seed: int = 0

    def __post_init__(self) -> None:
        given = [n for n, v in (("--phase", self.phase), ("--target-ef", self.target_ef), ("--keypoints", self.keypoints)) if v is not None]
        if len(given) > 1:
            raise InputError(f"give one target: {' or '.join(given)}, not both")
        if self.phase is None and not given:
            self.phase = "es"
        if self.phase not in (None, "es", "ed"):
            raise InputError(f"phase must be 'es' or 'ed', got {self.phase!r}")
        if self.target_ef is not None:
            self.target_ef = float(self.target_ef)
            if not (EF_LIMITS[0] <= self.target_ef <= EF_LIMITS[1]):
                raise InputError(f"target EF must be between {EF_LIMITS[0]:g} and {EF_LIMITS[1]:g} %, got {self.target_ef:g}")
        for name, value, low in (("frames", self.frames, 1), ("steps", self.steps, 1), ("seed", self.seed, 0)):
            if int(value) != value or value < low:
                raise InputError(f"{name} must be an integer >= {low}, got {value}")
        if self.source_frame is not None and (int(self.source_frame) != self.source_frame or self.source_frame < 0):
            raise InputError(f"source frame must be a non-negative integer, got {self.source_frame}")

    @property
    def mode(self) -> str:
        """``"phase"``, ``"target_ef"`` or ``"keypoints"``."""
        return "target_ef" if self.target_ef is not None else "keypoints" if self.keypoints is not None else "phase"

    @property
    def alphas(self) -> list[float]:
        return [k / self.frames for k in range(1, self.frames + 1)]


@dataclass
class Prediction:
    """The result of one prediction (arrays on the source grid of the loop).

    Attributes:
        frames: (N, H, W) float32 predicted frames in [0, 1], one per alpha.
        flows: (N, 2, H, W) float32 pull flows source -> each frame, source pixels, channels (dy, dx).
        labels: (N, H, W) uint8 built-in segmentation of each predicted frame.
        source: (H, W) the source frame.
        source_labels: (H, W) uint8 the loop's segmentation of the source frame.
        target_labels: (H, W) uint8 the loop's segmentation of the real target frame, or None.
        source_frame: its index.
        target: (H, W) the real target frame, or None when the target is not observed in the loop.
        target_frame: its index, or None.
        source_keypoints: (40, 2) keypoints (x, y) of the source frame.
        target_keypoints: (40, 2) the keypoints the last frame was asked to show.
        alphas: fraction of the motion of each frame.
        report: the JSON report (schema ``data_specs/predict_report.schema.json``).
        timings: stage -> seconds.
    """

    frames: np.ndarray
    flows: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    source_labels: np.ndarray
    source_frame: int
    target: np.ndarray | None
    target_labels: np.ndarray | None
    target_frame: int | None
    source_keypoints: np.ndarray
    target_keypoints: np.ndarray
    alphas: list[float]
    report: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


class StageClock:
    """Wall-clock seconds per named stage (a stage entered twice adds up)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.device = device

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.device is not None and self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class _Study:
    """What the first stages find in a loop: frames, labels, phases, the chosen frames and keypoints."""

    frames: np.ndarray
    meta: dict[str, Any]
    sector: np.ndarray
    labels: np.ndarray
    phases: Any
    beat: tuple[int, int]
    source_frame: int
    target_frame: int | None
    source_is_ed: bool
    source_kps: np.ndarray
    target_kps: np.ndarray
    real_target_kps: np.ndarray | None
    beat_kps: tuple[np.ndarray, np.ndarray]


class KDMPredictor:
    """The models behind ``echokdm predict``, loaded once (a batch reuses them for every study).

    Args:
        pipeline: the KDM pipeline (working resolution ``pipeline.sample_size``).
        segmenter: segments a loop: ``segmenter(loop (1, T, H, W), sector_mask=...)`` returning an object with
            ``.labels`` (T, H, W), as :class:`echokdm.models.seg.LVSegmenter`.
        prior: keypoint motion prior weights (name or path), loaded when ``--target-ef`` needs it.
        weights: role -> {"name", "sha256"} of the weights in use (for the report).
    """

    def __init__(self, pipeline, segmenter, prior: str = "kdm_prior", weights: dict[str, dict] | None = None) -> None:
        self.pipeline = pipeline
        self.segmenter = segmenter
        self.prior_weights = prior
        self.weights = dict(weights or {})
        self._prior = None

    @classmethod
    def from_weights(cls, weights: PredictWeights | None = None, device: str = "cpu") -> KDMPredictor:
        """Load the pipeline and the segmenter (default: the shipped weights; nothing is downloaded).

        Raises:
            InputError: missing or foreign weights, or ``device`` not available.
            UnsupportedError: this echokdm ships no KDM weights yet.
        """
        from echokdm.models.seg import LVSegmenter
        from echokdm.pipeline import EchoKDMPipeline

        weights = weights or PredictWeights()
        dev = _device(device)
        _require_shipped(weights)
        pipe = EchoKDMPipeline.from_weights(weights.flow_vae, weights.k2f, weights.f2i).to(dev)
        seg = LVSegmenter.from_pretrained(weights.seg, device=str(dev))
        info = {role: {"name": _weights_name(getattr(weights, role)), "sha256": _sha256(getattr(weights, role))}
                for role in ("seg", "flow_vae", "k2f", "f2i")}
        return cls(pipe, seg, weights.prior, info)

    @property
    def prior(self):
        """The keypoint motion prior (loaded on first use)."""
        if self._prior is None:
            from echokdm.models.prior import KeypointMotionPrior

            _require_shipped(PredictWeights(prior=self.prior_weights), roles=("prior",))
            self._prior = KeypointMotionPrior.load(self.prior_weights)
            self.weights["prior"] = {"name": _weights_name(self.prior_weights), "sha256": _sha256(self.prior_weights)}
        return self._prior

    @property
    def device(self) -> torch.device:
        return self.pipeline.f2i_unet.device

    def predict(self, cine: str | os.PathLike | torch.Tensor, options: PredictOptions | None = None) -> Prediction:
        """Predict the target frame (or the sequence towards it) of a cine loop; writes nothing.

        Args:
            cine: a DICOM cine (or any :func:`echokdm.io.load_cine` input), or the (1, T, H, W) ``MetaTensor``
                that :func:`~echokdm.io.load_cine` / :class:`~echokdm.transforms.LoadCineLoop` made of one.
            options: what to predict (default: ED -> ES).

        Returns:
            The :class:`Prediction` with its report.

        Raises:
            InputError: everything :func:`echokdm.io.load_cine` rejects, a single frame, a loop without a
                visible beat, a segmentation that does not fit the loop, an unusable keypoint file.
        """
        from echokdm.models.seg import SectorFit

        opts = options or PredictOptions()
        clock = StageClock(self.device)
        t_start = time.perf_counter()
        study = self._study(cine, opts, clock)
        pipe = self.pipeline
        with clock("prepare"):
            fit = SectorFit.from_mask(study.sector, pipe.sample_size)
            dev, dtype = self.device, pipe.f2i_unet.dtype
            src_full = torch.from_numpy(study.frames[study.source_frame])
            src = fit.to_work(src_full[None, None]).to(dev, dtype)
            kps = [torch.from_numpy(fit.points_to_work(k)).float()[None].to(dev) for k in (study.source_kps, study.target_kps)]
            generator = torch.Generator().manual_seed(opts.seed)
        with clock("k2f"):
            flow, _ = pipe.generate_flow(src, kps[0], kps[1], opts.steps, generator)
        with clock("f2i"):
            work_frames, flows, warped = pipe.render(src, flow, opts.alphas, opts.steps, generator)
        with clock("transfer"):
            frames, flows_src = residual_transfer(src_full, study.sector, fit, flows.float().cpu(), (work_frames - warped).float().cpu())
        with clock("segment_prediction"):
            pred_labels = self._segment_frames(np.concatenate([study.frames[study.source_frame][None], frames]), study.sector)
        with clock("measure"):
            report = self._report(study, opts, frames, pred_labels, fit)
        clock.seconds["total"] = time.perf_counter() - t_start
        report["timings_s"] = dict(clock.seconds)
        report["input"]["sha256"] = _input_sha256(cine)
        observed = study.target_frame is not None
        return Prediction(
            frames=frames, flows=flows_src, labels=pred_labels[1:], source=study.frames[study.source_frame],
            source_labels=study.labels[study.source_frame], source_frame=study.source_frame,
            target=study.frames[study.target_frame] if observed else None,
            target_labels=study.labels[study.target_frame] if observed else None, target_frame=study.target_frame,
            source_keypoints=study.source_kps, target_keypoints=study.target_kps, alphas=opts.alphas,
            report=report, timings=report["timings_s"],
        )

    # -- stages 1-3 -------------------------------------------------------------------------------------------
    def _study(self, cine: str | os.PathLike | torch.Tensor, opts: PredictOptions, clock: StageClock) -> _Study:
        from echokdm.io import load_cine, read_segmentation, require_loop
        from echokdm.phases import detect_phases

        with clock("load"):
            loop = cine if isinstance(cine, torch.Tensor) else load_cine(cine)
            require_loop(loop, 2)
            frames = loop[0].numpy()
            meta = dict(loop.meta)
            sector = _sector_of(meta, frames)
            target_track = _read_target_keypoints(opts.keypoints, frames.shape[1:]) if opts.keypoints else None
            if opts.source_frame is not None and opts.source_frame >= len(frames):
                raise InputError(f"source frame {opts.source_frame} is beyond the loop's {len(frames)} frames (0-{len(frames) - 1})")
        with clock("segment"):
            if opts.seg is not None:
                labels = np.asarray(read_segmentation(opts.seg))
                if labels.shape != frames.shape:
                    raise InputError(
                        f"segmentation {opts.seg} has shape {_shape(labels)} but the loop has {len(frames)} frames of "
                        f"{frames.shape[1]}x{frames.shape[2]} (rows x columns); it must label every frame of this loop"
                    )
            else:
                labels = self.segmenter(loop, sector_mask=sector).labels
            labels = np.where(labels <= 3, labels, 0).astype(np.uint8)
        with clock("keypoints"):
            name = Path(_path_of(cine)).name
            try:
                phases = detect_phases((labels == 1).sum(axis=(1, 2)), meta.get("frame_time_ms"))
            except InputError as e:
                raise InputError(f"{name}: no detectable heart beat: {e}") from None
            beats = phases.beats or [(e, min(phases.es, key=lambda s: abs(s - e))) for e in phases.ed if phases.es]
            if not beats:
                raise InputError(
                    f"{name}: no detectable heart beat: the LV area curve shows ED frames {phases.ed} and ES frames "
                    f"{phases.es}; predict needs a loop with both"
                )
            return self._choose(frames, meta, sector, labels, phases, beats, opts, target_track)

    def _choose(self, frames, meta, sector, labels, phases, beats, opts: PredictOptions, track) -> _Study:
        """Source and target frames and keypoints; ``beats`` are (ED, ES) pairs (ES after ED when the loop shows it)."""
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
        kp = _keypoints_of(labels)
        source_kps = kp(src)
        beat_kps = (kp(beat[0]), kp(beat[1]))
        real_target = kp(target) if target is not None else None
        if opts.mode == "phase":
            target_kps = real_target
        elif opts.mode == "target_ef":
            target_kps = self.prior.for_target_ef(source_kps, opts.target_ef)[-1]
        else:
            target_kps = track
        _check_inside(target_kps, frames.shape[1:])
        source_is_ed = opts.phase != "ed"
        _ef(source_kps, target_kps, source_is_ed, meta.get("spacing_mm"))  # degenerate target keypoints fail here
        return _Study(frames, meta, sector, labels, phases, beat, int(src), target, source_is_ed, source_kps,
                      np.asarray(target_kps, dtype=np.float64), real_target, beat_kps)

    def _segment_frames(self, frames: np.ndarray, sector: np.ndarray) -> np.ndarray:
        """Each frame segmented on its own (no temporal smoothing across source and predictions)."""
        out = [self.segmenter(torch.from_numpy(f[None, None]), sector_mask=sector).labels[0] for f in frames]
        return np.where(np.stack(out) <= 3, np.stack(out), 0).astype(np.uint8)

    # -- stage 7 ----------------------------------------------------------------------------------------------
    def _report(self, study: _Study, opts: PredictOptions, frames: np.ndarray, pred_labels: np.ndarray, fit) -> dict[str, Any]:
        from echokdm.metrics import (
            Units,
            ef_consistency,
            ejection_fraction,
            measure_frame,
        )

        spacing = study.meta.get("spacing_mm")
        sp = tuple(spacing) if spacing else None
        ed_m, es_m = (measure_frame(k, sp) for k in study.beat_kps)
        src_m, tgt_m = measure_frame(study.source_kps, sp), measure_frame(study.target_kps, sp)
        ef_kp = _ef(study.source_kps, study.target_kps, study.source_is_ed, sp)
        pred_kps, reason = [], None
        for lab in pred_labels:
            k, why = _safe_keypoints(lab)
            pred_kps.append(k)
            reason = reason or why
        ef_pred = None
        if pred_kps[0] is not None and pred_kps[-1] is not None:
            ef_pred = _ef(pred_kps[0], pred_kps[-1], study.source_is_ed, sp)
        truth = opts.target_ef if opts.mode == "target_ef" else (ef_kp if study.real_target_kps is not None else None)
        per_frame = []
        for i, (a, lab) in enumerate(zip(opts.alphas, pred_labels[1:])):
            k = pred_kps[i + 1]
            per_frame.append({
                "index": i, "alpha": a,
                "volume_simpson": measure_frame(k, sp).volume_simpson if k is not None else None,
                "lv_area_px": int((lab == 1).sum()),
            })
        return {
            "format": FORMAT,
            "version": VERSION,
            "command": None,
            "input": _input_summary(study, fit),
            "request": {
                "mode": opts.mode, "phase": opts.phase, "target_ef": opts.target_ef,
                "keypoints_file": opts.keypoints, "segmentation": "file" if opts.seg else "builtin",
                "segmentation_file": opts.seg, "frames": opts.frames, "alphas": opts.alphas,
                "steps": opts.steps, "seed": opts.seed, "device": str(self.device),
                "threads": torch.get_num_threads(), "anonymize": False,
            },
            "phases": {
                "ed_frames": list(study.phases.ed), "es_frames": list(study.phases.es),
                "beat": list(study.beat), "heart_rate_bpm": study.phases.heart_rate_bpm,
            },
            "source_frame": study.source_frame,
            "target_frame": study.target_frame,
            "units": Units(sp is not None).as_dict(),
            "volumes": {
                "source_beat_edv": ed_m.volume_simpson, "source_beat_esv": es_m.volume_simpson,
                "source_frame": src_m.volume_simpson, "target_keypoints": tgt_m.volume_simpson,
                "prediction": per_frame[-1]["volume_simpson"],
            },
            "ef": {
                "method": "simpson",
                "source_beat": ejection_fraction(ed_m.volume_simpson, es_m.volume_simpson),
                "source_beat_area_length": ejection_fraction(ed_m.volume_area_length, es_m.volume_area_length),
                "target_keypoints": ef_kp,
                "requested": opts.target_ef,
                "prediction": ef_pred,
                "prediction_note": None if ef_pred is not None else f"EF of the prediction cannot be measured: {reason}",
                "consistency": ef_consistency(ef_kp, ef_pred, truth) if ef_pred is not None else None,
            },
            "image_metrics": self._image_metrics(study, frames[-1], pred_labels[-1], ef_pred, ef_kp, sp),
            "frames": per_frame,
            "timings_s": {},
            "software": software_versions(),
            "weights": self.weights,
            "files": {},
        }

    @staticmethod
    def _image_metrics(study: _Study, pred: np.ndarray, pred_lab: np.ndarray, ef_pred, ef_real, sp) -> dict | None:
        """Scores against the real target frame, and of simply copying the source (the baseline to beat)."""
        from echokdm.evaluate.scores import lv_overlap, psnr_in_sector, ssim_in_sector

        if study.target_frame is None:
            return None
        target = study.frames[study.target_frame][None]
        tgt_lab = study.labels[study.target_frame][None]

        def scores(img: np.ndarray, lab: np.ndarray) -> dict[str, float | None]:
            dice, hd95 = lv_overlap(lab[None], tgt_lab, sp)
            return {"psnr": psnr_in_sector(img[None], target, study.sector), "ssim": ssim_in_sector(img[None], target, study.sector),
                    "dice": _finite(dice), "hd95": _finite(hd95)}

        out = scores(pred, pred_lab)
        out["ef_difference"] = abs(ef_pred - ef_real) if ef_pred is not None else None
        out["copy_source"] = scores(study.frames[study.source_frame], study.labels[study.source_frame])
        return out


def residual_transfer(
    source: torch.Tensor, sector: np.ndarray, fit, flows: torch.Tensor, residuals: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Carry working-grid predictions to the full-resolution source grid.

    Args:
        source: (H, W) full-resolution source frame in [0, 1].
        sector: (H, W) bool sector mask.
        fit: the :class:`~echokdm.models.seg.SectorFit` of the working grid.
        flows: (N, 2, S, S) pull flows on the working grid (working pixels).
        residuals: (N, 1, S, S) generated frame minus the warped source, on the working grid.

    Returns:
        (frames (N, H, W) float32 in [0, 1], flows (N, 2, H, W) float32 in source pixels).
    """
    from echokdm.flow import warp

    flow_src = fit.flow_to_source(flows)
    warped = warp(source.expand(len(flows), 1, -1, -1).float(), flow_src)
    frames = (warped + fit.to_source(residuals)).clamp(0, 1)[:, 0]
    inside = torch.from_numpy(np.asarray(sector, dtype=bool))
    frames = torch.where(inside, frames, source.float())
    return frames.numpy().astype(np.float32), (flow_src * inside).numpy().astype(np.float32)


def predict_study(
    cine: str | os.PathLike | torch.Tensor,
    out: str | os.PathLike,
    options: PredictOptions | None = None,
    predictor: KDMPredictor | None = None,
    weights: PredictWeights | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    command: str | None = None,
    anonymize: bool | Anonymizer = False,
) -> Prediction:
    """Predict and write every output file into ``out`` (nothing is left there when it fails).

    Args:
        cine: the input loop (never modified): a file or a loaded loop (see :meth:`KDMPredictor.predict`).
        out: output folder (created; an existing one must be an echokdm folder, replaced with ``overwrite``).
        options: what to predict.
        predictor: loaded models (default: loaded from ``weights`` on ``device``).
        weights: weights when ``predictor`` is None (default: shipped).
        device: ``cpu`` or ``cuda`` when ``predictor`` is None.
        overwrite: replace an earlier echokdm output folder.
        command: the command line to record in the report.
        anonymize: de-identify ``prediction.dcm`` (DICOM PS3.15 basic profile, see :mod:`echokdm.io.anonymize`;
            pass one :class:`~echokdm.io.anonymize.Anonymizer` to keep UIDs consistent over several studies) and
            keep no input path, hash or command line in the report.

    Returns:
        The :class:`Prediction` (its report lists the files written).

    Raises:
        EchoKDMError: bad input (see :meth:`KDMPredictor.predict`) or an unusable output folder.
    """
    OutputDir.check(out, overwrite)
    predictor = predictor or KDMPredictor.from_weights(weights, device)
    return save_prediction(predictor.predict(cine, options), cine, out, overwrite, command, anonymize)


def save_prediction(
    pred: Prediction, cine: str | os.PathLike | torch.Tensor, out: str | os.PathLike, overwrite: bool = False,
    command: str | None = None, anonymize: bool | Anonymizer = False,
) -> Prediction:
    """Write every output file of ``pred`` into ``out``, the report last (nothing is left there when it fails).

    Args:
        pred: the prediction of ``cine``.
        cine: its input loop (a DICOM input lends its header to ``prediction.dcm``).
        out: output folder (see :func:`predict_study`).
        overwrite: replace an earlier echokdm output folder.
        command: the command line to record in the report.
        anonymize: see :func:`predict_study`.

    Returns:
        ``pred`` (its report now lists the files written).

    Raises:
        OutputError: an unusable output folder.
    """
    from echokdm.io.anonymize import Anonymizer

    pred.report["command"] = command
    anonymizer = (anonymize if isinstance(anonymize, Anonymizer) else Anonymizer()) if anonymize else None
    if anonymizer is not None:
        _redact(pred.report)
    existed = Path(out).exists()
    out_dir = OutputDir(out, overwrite=overwrite)
    try:
        t0 = time.perf_counter()
        write_prediction(out_dir, pred, cine, anonymizer)
        pred.timings["write"] = time.perf_counter() - t0
        pred.timings["total"] += pred.timings["write"]
        out_dir.write_text(FILES["report_csv"], report_csv(pred.report))
        out_dir.write_json(FILES["report_json"], pred.report)  # last: its presence marks a finished prediction
    except BaseException:
        _remove_written(out_dir.path, existed)
        raise
    return pred


def write_prediction(
    out: OutputDir, pred: Prediction, cine: str | os.PathLike | torch.Tensor, anonymizer: Anonymizer | None = None
) -> None:
    """Write the frames, pictures, flow, segmentation and keypoints of ``pred`` (all but the report files);
    ``anonymizer`` de-identifies ``prediction.dcm``."""
    import imageio.v3 as iio

    from echokdm.io import write_cine_dicom
    from echokdm.io.dicom import read_dicom_header
    from echokdm.keypoints import KeypointTrack, save_keypoints
    from echokdm.render import write_gif
    from echokdm.segment import write_label_sequence

    rep = pred.report
    meta = rep["input"]
    frames8 = (np.clip(pred.frames, 0, 1) * 255).round().astype(np.uint8)
    source8 = (np.clip(pred.source, 0, 1) * 255).round().astype(np.uint8)
    spacing = meta["spacing_mm"]
    what = _describe(pred)
    header = read_dicom_header(_path_of(cine)) if meta["format"] == "dicom" else None
    with out.atomic(FILES["dicom"]) as tmp:
        write_cine_dicom(tmp, frames8, frame_time_ms=_sequence_frame_time(pred), spacing_mm=spacing, source=header,
                         series_description="echokdm prediction", derivation=what, anonymize=anonymizer)
    names = []
    for i, f in enumerate(frames8):
        names.append(f"{FILES['frames']}/frame_{i:03d}.png")
        with out.atomic(names[-1]) as tmp:
            iio.imwrite(tmp, f, extension=".png")
    gif = np.repeat(np.concatenate([source8[None], frames8])[..., None], 3, axis=-1)
    with out.atomic(FILES["gif"]) as tmp:
        write_gif(tmp, gif, _sequence_frame_time(pred) if len(frames8) > 1 else 500.0)
    with out.atomic(FILES["comparison"]) as tmp:
        comparison_figure(tmp, pred, rep["input"]["sector_box"])
    with out.atomic(FILES["flow_png"]) as tmp:
        flow_figure(tmp, pred.flows[-1], pred.source, rep["input"]["sector_box"])
    with out.atomic(FILES["flow_npy"]) as tmp, open(tmp, "wb") as f:
        np.save(f, pred.flows)
    with out.atomic(FILES["flow_nifti"]) as tmp:
        write_flow_nifti(tmp, pred.flows, spacing)
    with out.atomic(FILES["segmentation"]) as tmp:
        write_label_sequence(tmp, pred.labels, spacing)
    # the target keypoints alone, filed under the loop's frame of that phase: edit and pass back with --keypoints
    to_ed = rep["request"]["phase"] == "ed"
    beat = rep["phases"]["beat"]
    frame = pred.target_frame if pred.target_frame is not None else beat[0 if to_ed else 1]
    track = KeypointTrack(
        keypoints=pred.target_keypoints[None], frames=[frame], spacing_mm=tuple(spacing) if spacing else None,
        image_size=tuple(meta["image_size"]), phases={frame: "ED" if to_ed else "ES"},
    )
    with out.atomic(FILES["keypoints"]) as tmp:
        save_keypoints(tmp, track, fmt="json")
    rep["files"] = {**{k: v for k, v in FILES.items() if k != "frames"}, "frames": names}


def comparison_figure(path: str | os.PathLike, pred: Prediction, box: list[int]) -> None:
    """source | prediction | real target (when observed) | difference, cropped to the sector box, with the
    segmentation outlined and the numbered keypoints (source's, the target ones asked for, the real target's)."""
    from matplotlib import colormaps

    from echokdm.keypoints.draw import plot_keypoints
    from echokdm.render import label_overlay

    x0, y0, x1, y1 = box
    crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    shift = np.array([x0, y0], dtype=np.float64)
    rep = pred.report
    ef_pred = rep["ef"]["prediction"]
    pred_title = f"prediction (EF {ef_pred:.0f}%)" if ef_pred is not None else "prediction"
    panels = [
        (label_overlay(pred.source[None], pred.source_labels[None], 0.0)[0], pred.source_keypoints,
         f"source, frame {pred.source_frame}"),
        (label_overlay(pred.frames[-1][None], pred.labels[-1][None], 0.0)[0], pred.target_keypoints,
         f"{pred_title}; dots: target keypoints (EF {rep['ef']['target_keypoints']:.0f}%)"),
    ]
    reference, ref_name = pred.source, "source"
    if pred.target is not None:
        panels.append((label_overlay(pred.target[None], pred.target_labels[None], 0.0)[0],
                       pred.target_keypoints, f"real target, frame {pred.target_frame}"))
        reference, ref_name = pred.target, "real target"
    diff = np.clip((pred.frames[-1] - reference) / 0.5, -1, 1) * 0.5 + 0.5
    panels.append(((colormaps["RdBu_r"](diff)[..., :3] * 255).round().astype(np.uint8), None,
                   f"prediction - {ref_name} (blue -0.5 .. red +0.5)"))
    plot_keypoints(path, [p[0][crop] for p in panels], [None if p[1] is None else p[1] - shift for p in panels],
                   [p[2] for p in panels])


def flow_figure(path: str | os.PathLike, flow: np.ndarray, source: np.ndarray, box: list[int]) -> None:
    """The flow source -> prediction as a colour wheel picture (hue: direction, brightness: magnitude) with its key."""
    from matplotlib.figure import Figure

    from echokdm.flow import flow_to_rgb

    x0, y0, x1, y1 = box
    f = flow[:, y0 : y1 + 1, x0 : x1 + 1]
    vmax = max(float(np.percentile(np.hypot(*f), 99)), 1e-3)
    r = np.linspace(-1, 1, 101)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    key = flow_to_rgb(np.stack([yy, xx]) * vmax, vmax)
    key[np.hypot(yy, xx) > 1] = 255
    fig = Figure(figsize=(12, 4.2), dpi=100)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [4, 4, 1.3]})
    axes[0].imshow(source[y0 : y1 + 1, x0 : x1 + 1], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("source", fontsize=9)
    axes[1].imshow(flow_to_rgb(f, vmax))
    axes[1].set_title("pull flow source -> prediction (source pixels)", fontsize=9)
    axes[2].imshow(key, extent=(-vmax, vmax, vmax, -vmax))
    axes[2].set_title(f"key: dx, dy (px)\nfull brightness {vmax:.1f} px", fontsize=8)
    axes[2].tick_params(labelsize=7)
    for ax in axes[:2]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_flow_nifti(path: str | os.PathLike, flows: np.ndarray, spacing_mm: list[float] | None) -> None:
    """Write (N, 2, H, W) flows as gzipped NIfTI of shape (W, H, N, 1, 2), intent VECTOR.

    The layout follows ``segmentation.nii.gz`` (x fastest, frames along the third axis); the vector holds the
    flow's channels as in ``flow.npy``: (dy, dx) in source pixels, pull convention.
    """
    import gzip

    import nibabel as nib

    dy, dx = spacing_mm if spacing_mm else (1.0, 1.0)
    data = np.ascontiguousarray(np.asarray(flows, dtype=np.float32).transpose(3, 2, 0, 1)[:, :, :, None, :])
    image = nib.Nifti1Image(data, np.diag([float(dx), float(dy), 1.0, 1.0]))
    image.header.set_intent("vector", (), name="flow dy,dx px")
    image.header["descrip"] = b"echokdm pull flow source->frame, (dy, dx) in pixels"
    image.header.set_xyzt_units("mm")
    with open(path, "wb") as f:
        f.write(gzip.compress(image.to_bytes(), compresslevel=6, mtime=0))  # no time stamp: same data, same bytes


def report_csv(report: dict[str, Any]) -> str:
    """The report as a one-row CSV (nested keys joined by '.'; lists and per-frame records left out)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif not isinstance(value, list):
            flat[prefix] = "" if value is None else value

    walk("", {k: v for k, v in report.items() if k not in ("frames", "files")})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(flat), lineterminator="\n")
    w.writeheader()
    w.writerow(flat)
    return buf.getvalue()


def software_versions() -> dict[str, str]:
    """Versions of echokdm and the libraries that shape its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("echokdm", "torch", "diffusers", "monai", "numpy", "pydicom", "scikit-image", "scipy", "SimpleITK",
                "nibabel", "opencv-python-headless", "dicom-anonymizer"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


# -- helpers ----------------------------------------------------------------------------------------------------
def _device(device: str) -> torch.device:
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise InputError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but CUDA is not available on this machine; use --device cpu")
    return torch.device(device)


def _require_shipped(weights: PredictWeights, roles: tuple[str, ...] = ("seg", "flow_vae", "k2f", "f2i")) -> None:
    """A clear error when default weights are not shipped with this echokdm (yet)."""
    from echokdm.weights import manifest

    shipped = manifest()
    missing = [getattr(weights, r) for r in roles if not str(getattr(weights, r)).endswith(".safetensors") and getattr(weights, r) not in shipped]
    if missing:
        raise UnsupportedError(
            f"this echokdm ships no weights named {', '.join(missing)}; train them (pipelines/train_kdm.sh) and pass "
            "--weights DIR with files named like the shipped ones"
        )


def _path_of(cine: str | os.PathLike | torch.Tensor) -> str:
    """The file a loop comes from: the path itself, or a loaded loop's ``filename_or_obj``."""
    return str(cine.meta.get("filename_or_obj", "")) if isinstance(cine, torch.Tensor) else str(cine)


def _input_sha256(cine: str | os.PathLike | torch.Tensor) -> str | None:
    """sha256 of the input file (None for a folder of frames or a loop not read from one file)."""
    from echokdm.weights import sha256_of

    path = Path(_path_of(cine))
    return sha256_of(path) if path.is_file() else None


def _redact(report: dict[str, Any]) -> None:
    """``--anonymize``: no input path, file hash or command line in the report (the settings stay)."""
    report["command"] = None
    report["input"]["sha256"] = None
    report["request"].update(anonymize=True, keypoints_file=None, segmentation_file=None)


def _weights_name(name: str) -> str:
    return Path(name).name if str(name).endswith(".safetensors") else str(name)


def _sha256(name: str) -> str:
    from echokdm.weights import WEIGHTS_DIR, manifest, sha256_of

    entry = manifest().get(str(name))
    return entry["sha256"] if entry else sha256_of(Path(name) if str(name).endswith(".safetensors") else WEIGHTS_DIR / name)


def _sector_of(meta: dict[str, Any], frames: np.ndarray) -> np.ndarray:
    mask = meta.get("sector_mask")
    if mask is None:
        from echokdm.io.sector import sector_mask

        mask = sector_mask((frames * 255).round().astype(np.uint8))
    return np.asarray(mask, dtype=bool)


def _shape(a: np.ndarray) -> str:
    return "x".join(str(s) for s in a.shape)


def _keypoints_of(labels: np.ndarray):
    from echokdm.keypoints import extract_keypoints

    def kp(frame: int) -> np.ndarray:
        try:
            return extract_keypoints(labels[frame], N_KEYPOINTS)
        except InputError as e:
            raise InputError(f"frame {frame}: {e}") from None

    return kp


def _safe_keypoints(labels: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    from echokdm.keypoints import extract_keypoints

    try:
        return extract_keypoints(labels, N_KEYPOINTS), None
    except InputError as e:
        return None, str(e)


def _ef(source_kps: np.ndarray, target_kps: np.ndarray, source_is_ed: bool, spacing) -> float:
    from echokdm.metrics import ef_from_keypoints

    ed, es = (source_kps, target_kps) if source_is_ed else (target_kps, source_kps)
    return ef_from_keypoints(ed, es, tuple(spacing) if spacing else None)


def _read_target_keypoints(path: str, shape: tuple[int, int]) -> np.ndarray:
    """The target keypoints of a keypoint file: its only frame, else its first frame marked ES."""
    from echokdm.keypoints import load_keypoints

    track = load_keypoints(path)
    if track.n_keypoints != N_KEYPOINTS:
        raise InputError(
            f"keypoint file {path} has {track.n_keypoints} keypoints per frame; predict needs {N_KEYPOINTS} "
            "(endocardium + epicardium, as `echokdm metrics --keypoints 40` writes)"
        )
    if track.image_size is not None and tuple(track.image_size) != tuple(shape):
        raise InputError(f"keypoint file {path} is for {track.image_size[0]}x{track.image_size[1]} images, the loop's are {shape[0]}x{shape[1]}")
    if len(track.frames) == 1:
        return track.keypoints[0]
    es = [f for f in track.frames if track.phases.get(f) == "ES"]
    if not es:
        raise InputError(f"keypoint file {path} holds {len(track.frames)} frames and none is marked ES; keep only the target frame")
    return track[es[0]]


def _check_inside(kps: np.ndarray, shape: tuple[int, int]) -> None:
    h, w = shape
    k = np.asarray(kps)
    bad = np.flatnonzero((k[:, 0] < -0.5) | (k[:, 0] > w - 0.5) | (k[:, 1] < -0.5) | (k[:, 1] > h - 0.5))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"target keypoint {i} at ({k[i, 0]:.1f}, {k[i, 1]:.1f}) lies outside the {w}x{h} image")


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _input_summary(study: _Study, fit) -> dict[str, Any]:
    """What the report says about the input: geometry, timing and calibration, never identifying fields."""
    m = study.meta
    keep = ("format", "modality", "manufacturer", "model", "transfer_syntax", "photometric_interpretation",
            "frame_time_ms", "frame_time_source", "spacing_mm", "spacing_source")
    out = {k: m.get(k) for k in keep}
    out["spacing_mm"] = [float(v) for v in m["spacing_mm"]] if m.get("spacing_mm") else None
    out["n_frames"] = int(study.frames.shape[0])
    out["image_size"] = [int(study.frames.shape[1]), int(study.frames.shape[2])]
    out["sector_box"] = [int(v) for v in fit.box]
    out["working_size"] = int(fit.size)
    return out


def _describe(pred: Prediction) -> str:
    rep = pred.report["request"]
    if rep["mode"] == "target_ef":
        target = f"ES at EF {rep['target_ef']:g}%"
    else:
        target = "given keypoints" if rep["mode"] == "keypoints" else rep["phase"].upper()
    return f"echokdm KDM prediction of {target} from frame {pred.source_frame}"


def _sequence_frame_time(pred: Prediction) -> float:
    """Frame time of the predicted sequence: the source -> target time spread over its frames."""
    ft = pred.report["input"]["frame_time_ms"] or 40.0
    beat = pred.report["phases"]["beat"]
    span = abs(pred.target_frame - pred.source_frame) if pred.target_frame is not None else abs(beat[1] - beat[0])
    return float(ft) * max(span, 1) / len(pred.frames)


def _remove_written(path: Path, existed: bool) -> None:
    """Leave nothing partial: remove the folder we created, or empty the echokdm folder we were writing."""
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.name != MARKER:
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


__all__ = [
    "DEFAULT_STEPS",
    "EF_LIMITS",
    "FILES",
    "N_KEYPOINTS",
    "KDMPredictor",
    "PredictOptions",
    "PredictWeights",
    "Prediction",
    "StageClock",
    "comparison_figure",
    "flow_figure",
    "predict_study",
    "report_csv",
    "residual_transfer",
    "save_prediction",
    "software_versions",
    "write_flow_nifti",
    "write_prediction",
]
