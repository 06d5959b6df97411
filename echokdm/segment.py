"""What ``echokdm segment`` does: segment a cine loop with the built-in segmenter and measure it.

Files written to the output folder::

    segmentation.nii.gz   (T, H, W) uint8 CAMUS labels on the cine's grid (time slowest; spacing dx, dy)
    overlay.gif           the loop with the LV cavity (red), myocardium (green) and LA (blue) outlined
    segmentation.json     weights and their sha256, LV cavity area per frame, area-curve jitter
    report.json/.csv, frames.csv, keypoints.json/.csv, area_curve.png, overlay_ed_es.png
                          the metrics report of ``echokdm metrics`` (phases, volumes, EF, GLS)
    segmentation_seg.dcm  DICOM SEG of the labels, frame by frame on the source cine (DICOM input only)
    measurements_sr.dcm   DICOM SR (TID 1500) of EF, volumes, GLS and heart rate (DICOM input with measurements)

The DICOM outputs join the cine's study as new series (or, with ``anonymize``, a de-identified copy of it).
The input is read and checked before torch, the model or a writer is imported: a bad input fails fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from echokdm import __version__
from echokdm.defaults import SEG_WEIGHTS
from echokdm.errors import InputError
from echokdm.outputs import OutputDir

FILES = {"segmentation": "segmentation.nii.gz", "overlay_gif": "overlay.gif", "segmentation_json": "segmentation.json"}


def segment_study(
    cine: str | os.PathLike,
    out: str | os.PathLike,
    weights: str | os.PathLike = SEG_WEIGHTS,
    n_keypoints: int = 20,
    overwrite: bool = False,
    anonymize: bool = False,
) -> dict[str, Any]:
    """Segment every frame of a cine loop, write the segmentation, an overlay GIF and the metrics report.

    Args:
        cine: a DICOM cine (or any :func:`echokdm.io.load_cine` input).
        out: output folder.
        weights: shipped weights name or a trained ``model.safetensors``.
        n_keypoints: 20 or 40 keypoints for the metrics.
        overwrite: replace an earlier echokdm output folder.
        anonymize: de-identify the DICOM outputs (DICOM PS3.15 basic profile) and keep the input path out of
            the JSON files.

    Returns:
        Summary: files, frames, ED/ES frames, EF (Simpson, area-length) of complete beats, ``ef_unpaired``
        (volumes, EF and GLS from ED and ES of neighbouring beats) when the loop holds no complete beat, area jitter,
        ``metrics_error`` when the loop could not be measured (the segmentation is still written), and
        ``dicom_note`` saying why a DICOM SEG or SR was not written (None when both were).

    Raises:
        InputError: unreadable input or a single frame.
        OutputError: an output folder that cannot be used.
    """
    from echokdm.io import load_cine_file, loop_spacing, require_loop

    if n_keypoints not in (20, 40):
        raise InputError(f"number of keypoints must be 20 or 40, got {n_keypoints}")
    OutputDir.check(out, overwrite, inputs=[cine])
    cine_file = load_cine_file(cine)
    loop = cine_file.loop
    require_loop(loop, 3)
    from echokdm.io.anonymize import Anonymizer  # the models and writers load once the input is known to be good
    from echokdm.io.dicom_results import write_dicom_results
    from echokdm.io.nifti import write_label_sequence
    from echokdm.metrics import measure_loop
    from echokdm.metrics_report import metrics_report, write_metrics
    from echokdm.models.seg import LVSegmenter, area_jitter
    from echokdm.render import label_overlay, write_gif

    segmenter = LVSegmenter.from_pretrained(weights)
    out_dir = OutputDir(out, overwrite=overwrite, inputs=[cine])
    result = segmenter(loop)
    meta = loop.meta
    spacing = loop_spacing(loop)
    frame_time = meta.get("frame_time_ms")
    frames = loop[0].numpy()

    with out_dir.atomic(FILES["segmentation"]) as tmp:
        write_label_sequence(tmp, result.labels, spacing)
    with out_dir.atomic(FILES["overlay_gif"]) as tmp:
        write_gif(tmp, label_overlay(frames, result.labels), frame_time)

    summary: dict[str, Any] = {
        "cine": None if anonymize else str(cine),
        "files": dict(FILES),
        "n_frames": int(result.labels.shape[0]),
        "image_size": [int(s) for s in result.labels.shape[1:]],
        "weights": str(weights),
        "weights_sha256": segmenter.weights_sha256,
        "working_size": segmenter.config.size,
        "temporal_sigma_ms": segmenter.temporal_sigma_ms,
        "temporal_kernel": [round(w, 6) for w in result.temporal_kernel],
        "lv_area_px": result.lv_area_px.tolist(),
        "lv_area_jitter": area_jitter(result.lv_area_px),
        "metrics_error": None,
        "dicom_note": None,
    }
    try:
        lm = measure_loop(result.labels, n_keypoints, spacing, frame_time)
    except InputError as e:
        summary["metrics_error"] = str(e)
    else:
        inputs = {"segmentation": FILES["segmentation"], "dicom": None if anonymize else str(cine)}
        report = metrics_report(lm, result.labels.shape[1:], inputs, meta.get("spacing_source") if spacing else None)
        write_metrics(out_dir, lm, report, frames, "cine")
        summary.update(ed_frames=report["ed_frames"], es_frames=report["es_frames"], **report["summary"])
        summary["ef_unpaired"] = _unpaired_ef(lm) if not report["beats"] else None
    if cine_file.header is not None:
        groups = _measurement_groups(summary, report, lm.units.calibrated) if not summary["metrics_error"] else []
        sha = segmenter.weights_sha256
        algorithm = (
            f"echokdm LV segmenter ({Path(str(weights)).stem})",
            f"{__version__}+{sha[:12]}" if sha else __version__,
        )
        anonymizer = Anonymizer() if anonymize else None  # one key: the SR's references match the SEG's
        written, summary["dicom_note"] = write_dicom_results(
            out_dir, result.labels, cine_file.header, groups, [cine_file.header], algorithm, anonymizer
        )
        summary["files"].update(written)
    else:
        summary["dicom_note"] = "no DICOM SEG or SR: the input is not DICOM, so there is no study to join"
    out_dir.write_json(FILES["segmentation_json"], summary)
    return summary


def _measurement_groups(summary: dict[str, Any], report: dict[str, Any], calibrated: bool) -> list:
    """SR groups: one per complete beat, or the ES and ED of neighbouring beats, and the loop's heart rate."""
    from echokdm.io.sr import Measured, MeasurementGroup, beat_group

    groups = [beat_group(f"beat {i + 1}: ED frame {b['ed']}, ES frame {b['es']}", b, calibrated)
              for i, b in enumerate(report["beats"])]
    if u := summary["ef_unpaired"]:
        groups.append(beat_group(f"ES frame {u['es']} and ED frame {u['ed']} of neighbouring beats", u, calibrated))
    if report["heart_rate_bpm"]:
        groups.append(MeasurementGroup("cine loop", [Measured("heart_rate", float(report["heart_rate_bpm"]))]))
    return groups


def _unpaired_ef(lm: Any) -> dict[str, Any] | None:
    """Volumes, EF and GLS (keys as :meth:`~echokdm.metrics.LoopMetrics.beats`) from the largest-area ED and the
    smallest-area ES when the loop holds no ED followed by an ES.

    A loop of about one beat often starts after ED or ends before ES; the ES of one beat and the ED of
    the next still give the stroke volume of a beat of similar size.
    """
    from echokdm.metrics import ejection_fraction

    if not (lm.phases.ed and lm.phases.es):
        return None
    ed = max(lm.phases.ed, key=lambda t: lm.frames[t].area)
    es = min(lm.phases.es, key=lambda t: lm.frames[t].area)
    a, b = lm.frames[ed], lm.frames[es]
    return {
        "ed": int(ed),
        "es": int(es),
        "edv_simpson": a.volume_simpson,
        "esv_simpson": b.volume_simpson,
        "ef_simpson": ejection_fraction(a.volume_simpson, b.volume_simpson),
        "edv_area_length": a.volume_area_length,
        "esv_area_length": b.volume_area_length,
        "ef_area_length": ejection_fraction(a.volume_area_length, b.volume_area_length),
        "gls": 100.0 * (b.endocardial_length - a.endocardial_length) / a.endocardial_length,
        "note": "no ED followed by ES inside the loop; ED and ES of neighbouring beats",
    }
