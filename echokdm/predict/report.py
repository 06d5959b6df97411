"""The result of a prediction (:class:`Prediction`), its measurements and its report.

The report (schema ``data_specs/predict_report.schema.json``) is built in one place, :func:`build_report`, from the
prediction's sections, timings and (once written) its command line and files; ``report.csv`` is its flat copy.
"""

from __future__ import annotations

import csv
import functools
import io
import platform
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from echokdm.defaults import EF_PLAUSIBLE, N_KEYPOINTS
from echokdm.grid import SectorFit
from echokdm.metrics import (
    Units,
    ef_between,
    ef_consistency,
    ejection_fraction,
    global_longitudinal_strain,
    image_scores,
    measure_frame,
    prediction_ef,
)
from echokdm.predict.study import Study

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

FORMAT = "echokdm-predict-report"
VERSION = 1


@dataclass
class Prediction:
    """The result of one prediction (arrays on the source grid of the loop).

    Attributes:
        frames: (N, H, W) float32 predicted frames in [0, 1], one per alpha.
        flows: (N, 2, H, W) float32 pull flows source -> each frame, source pixels, channels (dy, dx).
        labels: (N, H, W) uint8 built-in segmentation of each predicted frame.
        source: (H, W) the source frame.
        source_labels: (H, W) uint8 the loop's segmentation of the source frame.
        source_frame: its index.
        target: (H, W) the real target frame, or None when the target is not observed in the loop.
        target_labels: (H, W) uint8 the loop's segmentation of the real target frame, or None.
        target_frame: its index, or None.
        source_keypoints: (40, 2) keypoints (x, y) of the source frame.
        target_keypoints: (40, 2) the keypoints the last frame was asked to show.
        alphas: fraction of the motion of each frame.
        sections: the report's sections from ``input`` to ``frames`` (see :func:`build_report`).
        weights: role -> {"name", "sha256"} of the weights used.
        header: the input's DICOM header (lent to ``prediction.dcm``), or None.
        timings: stage -> seconds.
        command: the command line recorded in the report.
        anonymized: the outputs are de-identified (no input path, hash or command line in the report).
        files: what was written, once written.
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
    sections: dict[str, Any]
    weights: dict[str, dict]
    header: Dataset | None = None
    timings: dict[str, float] = field(default_factory=dict)
    command: str | None = None
    anonymized: bool = False
    files: dict[str, Any] = field(default_factory=dict)

    @property
    def report(self) -> dict[str, Any]:
        """The JSON report (schema ``data_specs/predict_report.schema.json``), built from the fields above."""
        return build_report(self)


def study_sections(study: Study, fit: SectorFit, device: torch.device) -> dict[str, Any]:
    """The report's ``input``, ``request``, ``phases``, ``source_frame`` and ``target_frame`` sections."""
    opts = study.input.options
    return {
        "input": _input_summary(study, fit),
        "request": {
            "mode": opts.mode, "phase": opts.phase, "target_ef": opts.target_ef,
            "keypoints_file": opts.keypoints, "segmentation": "file" if opts.seg else "builtin",
            "segmentation_file": opts.seg, "frames": opts.frames, "alphas": opts.alphas,
            "steps": opts.steps, "k2f_steps": opts.k2f_steps, "ef_check": opts.ef_check,
            "seed": opts.seed, "device": str(device),
            "threads": torch.get_num_threads(), "anonymize": False,
        },
        "phases": {
            "ed_frames": list(study.phases.ed), "es_frames": list(study.phases.es),
            "beat": list(study.beat), "heart_rate_bpm": study.phases.heart_rate_bpm,
        },
        "source_frame": study.source_frame,
        "target_frame": study.target_frame,
    }


def measure(study: Study, frames: np.ndarray, pred_labels: np.ndarray) -> dict[str, Any]:
    """The report's ``units``, ``volumes``, ``ef``, ``strain``, ``image_metrics`` and ``frames`` sections.

    Args:
        study: the study predicted.
        frames: (N, H, W) predicted frames.
        pred_labels: (1 + N, H, W) the segmenter's labels of the source frame, then of each predicted frame.
    """
    sp, opts = study.input.spacing, study.input.options
    ed_m, es_m = (measure_frame(k, sp) for k in study.beat_kps)
    src_m, tgt_m = measure_frame(study.source_kps, sp), measure_frame(study.target_kps, sp)
    ef_kp = ef_between(study.source_kps, study.target_kps, study.source_is_ed, sp)
    measured = prediction_ef(pred_labels, study.source_is_ed, sp, N_KEYPOINTS)
    ef_pred = measured.ef
    truth = opts.target_ef if opts.mode == "target_ef" else (ef_kp if study.real_target_kps is not None else None)
    per_frame = []
    for i, (a, lab) in enumerate(zip(opts.alphas, pred_labels[1:])):
        k = measured.keypoints[i + 1]
        per_frame.append({
            "index": i, "alpha": a,
            "volume_simpson": measure_frame(k, sp).volume_simpson if k is not None else None,
            "lv_area_px": int((lab == 1).sum()),
        })
    ef = {
        "method": "simpson",
        "source_beat": ejection_fraction(ed_m.volume_simpson, es_m.volume_simpson),
        "source_beat_area_length": ejection_fraction(ed_m.volume_area_length, es_m.volume_area_length),
        "target_keypoints": ef_kp,
        "requested": opts.target_ef,
        "prediction": ef_pred,
        "prediction_note": None
        if ef_pred is not None
        else f"EF of the prediction cannot be measured: {measured.reason}",
        "consistency": ef_consistency(ef_kp, ef_pred, truth) if ef_pred is not None else None,
    }
    ef["implausible"] = implausible_efs(ef)
    return {
        "units": Units(sp is not None).as_dict(),
        "volumes": {
            "source_beat_edv": ed_m.volume_simpson,
            "source_beat_esv": es_m.volume_simpson,
            "source_frame": src_m.volume_simpson,
            "target_keypoints": tgt_m.volume_simpson,
            "prediction": per_frame[-1]["volume_simpson"],
        },
        "ef": ef,
        "strain": {"source_beat_gls": global_longitudinal_strain(*study.beat_kps, sp)},
        "image_metrics": _image_metrics(study, frames[-1], pred_labels[-1], ef_pred, ef_kp),
        "frames": per_frame,
    }


def implausible_efs(ef: dict[str, Any]) -> list[str]:
    """The EF entries of ``ef`` (source_beat, target_keypoints, prediction, ...) outside
    :data:`~echokdm.defaults.EF_PLAUSIBLE`: not finite, below 0 % (ESV > EDV) or above 100 %."""
    lo, hi = EF_PLAUSIBLE
    keys = ("source_beat", "source_beat_area_length", "target_keypoints", "prediction")
    return [k for k in keys if ef.get(k) is not None and not (lo <= ef[k] <= hi)]


def build_report(pred: Prediction) -> dict[str, Any]:
    """The report of ``pred``: its sections, timings, software, weights, command line and files; de-identified
    (no command line, input hash or input file names) when ``pred.anonymized``."""
    s, anonymized = pred.sections, pred.anonymized
    request = {**s["request"], "anonymize": anonymized}
    if anonymized:
        request.update(keypoints_file=None, segmentation_file=None)
    return {
        "format": FORMAT,
        "version": VERSION,
        "command": None if anonymized else pred.command,
        "input": {**s["input"], "sha256": None if anonymized else s["input"]["sha256"]},
        "request": request,
        **{
            k: s[k]
            for k in (
                "phases", "source_frame", "target_frame", "units", "volumes", "ef", "strain", "image_metrics", "frames"
            )
        },
        "adapt": s.get("adapt"),
        "cavity_check": s["cavity_check"],
        "ef_check": s["ef_check"],
        "timings_s": dict(pred.timings),
        "software": software_versions(),
        "weights": pred.weights,
        "files": pred.files,
    }


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
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("echokdm", "torch", "diffusers", "monai", "numpy", "pydicom", "scikit-image", "scipy", "SimpleITK",
                "nibabel", "opencv-python-headless", "dicom-anonymizer"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _image_metrics(
    study: Study, pred: np.ndarray, pred_lab: np.ndarray, ef_pred: float | None, ef_real: float
) -> dict | None:
    """Scores against the real target frame, and of simply copying the source (the baseline to beat)."""
    if study.target_frame is None:
        return None
    inp = study.input
    target, tgt_lab = inp.frames[study.target_frame][None], study.labels[study.target_frame][None]

    def scores(img: np.ndarray, lab: np.ndarray) -> dict[str, float | None]:
        s = image_scores(img[None], target, lab[None], tgt_lab, inp.sector, inp.spacing)
        return {"psnr": s["psnr"], "ssim": s["ssim"], "dice": _finite(s["dice"]), "hd95": _finite(s["hd95"])}

    out = scores(pred, pred_lab)
    out["ef_difference"] = abs(ef_pred - ef_real) if ef_pred is not None else None
    out["copy_source"] = scores(inp.frames[study.source_frame], study.labels[study.source_frame])
    return out


def _input_summary(study: Study, fit: SectorFit) -> dict[str, Any]:
    """What the report says about the input: geometry, timing, calibration and the file's hash, never
    identifying fields."""
    inp = study.input
    keep = ("format", "modality", "manufacturer", "model", "transfer_syntax", "photometric_interpretation",
            "frame_time_ms", "frame_time_source", "spacing_mm", "spacing_source")
    out = {k: inp.meta.get(k) for k in keep}
    out["spacing_mm"] = [float(v) for v in inp.spacing] if inp.spacing else None
    out["n_frames"] = int(inp.frames.shape[0])
    out["image_size"] = [int(inp.frames.shape[1]), int(inp.frames.shape[2])]
    out["sector_box"] = [int(v) for v in fit.box]
    out["working_size"] = int(fit.size)
    out["sha256"] = inp.sha256
    return out


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None
