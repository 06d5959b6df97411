"""What ``echokdm segment`` does: segment a cine loop with the built-in segmenter and measure it.

Files written to the output folder::

    segmentation.nii.gz   (T, H, W) uint8 CAMUS labels on the cine's grid (time slowest; spacing dx, dy)
    overlay.gif           the loop with the LV cavity (red), myocardium (green) and LA (blue) outlined
    segmentation.json     weights and their sha256, LV cavity area per frame, area-curve jitter
    report.json/.csv, frames.csv, keypoints.json/.csv, area_curve.png, overlay_ed_es.png
                          the metrics report of ``echokdm metrics`` (phases, volumes, EF, GLS)
"""

from __future__ import annotations

import os
from typing import Any

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
) -> dict[str, Any]:
    """Segment every frame of a cine loop, write the segmentation, an overlay GIF and the metrics report.

    Args:
        cine: a DICOM cine (or any :func:`echokdm.io.load_cine` input).
        out: output folder.
        weights: shipped weights name or a trained ``model.safetensors``.
        n_keypoints: 20 or 40 keypoints for the metrics.
        overwrite: replace an earlier echokdm output folder.

    Returns:
        Summary: files, frames, ED/ES frames, EF (Simpson, area-length) of complete beats, ``ef_unpaired``
        (EF from ED and ES of neighbouring beats) when the loop holds no complete beat, area jitter, and
        ``metrics_error`` when the loop could not be measured (the segmentation is still written).

    Raises:
        InputError: unreadable input or a single frame.
        OutputError: an output folder that cannot be used.
    """
    from echokdm.io import load_cine, require_loop
    from echokdm.io.nifti import write_label_sequence
    from echokdm.metrics import measure_loop
    from echokdm.metrics_report import metrics_report, write_metrics
    from echokdm.models.seg import LVSegmenter, area_jitter
    from echokdm.render import label_overlay, write_gif

    if n_keypoints not in (20, 40):
        raise InputError(f"number of keypoints must be 20 or 40, got {n_keypoints}")
    loop = load_cine(cine)
    require_loop(loop, 3)
    segmenter = LVSegmenter.from_pretrained(weights)
    out_dir = OutputDir(out, overwrite=overwrite)
    result = segmenter(loop)
    meta = loop.meta
    spacing = meta.get("spacing_mm")
    frame_time = meta.get("frame_time_ms")
    frames = loop[0].numpy()

    with out_dir.atomic(FILES["segmentation"]) as tmp:
        write_label_sequence(tmp, result.labels, spacing)
    with out_dir.atomic(FILES["overlay_gif"]) as tmp:
        write_gif(tmp, label_overlay(frames, result.labels), frame_time)

    summary: dict[str, Any] = {
        "cine": str(cine),
        "files": dict(FILES),
        "n_frames": int(result.labels.shape[0]),
        "image_size": [int(s) for s in result.labels.shape[1:]],
        "weights": str(weights),
        "weights_sha256": segmenter.weights_sha256,
        "working_size": segmenter.config.size,
        "temporal_kernel": list(segmenter.temporal_kernel),
        "lv_area_px": result.lv_area_px.tolist(),
        "lv_area_jitter": area_jitter(result.lv_area_px),
        "metrics_error": None,
    }
    try:
        lm = measure_loop(result.labels, n_keypoints, spacing, frame_time)
    except InputError as e:
        summary["metrics_error"] = str(e)
    else:
        inputs = {"segmentation": FILES["segmentation"], "dicom": str(cine)}
        report = metrics_report(lm, result.labels.shape[1:], inputs, meta.get("spacing_source") if spacing else None)
        write_metrics(out_dir, lm, report, frames, "cine")
        summary.update(ed_frames=report["ed_frames"], es_frames=report["es_frames"], **report["summary"])
        summary["ef_unpaired"] = _unpaired_ef(lm) if not report["beats"] else None
    out_dir.write_json(FILES["segmentation_json"], summary)
    return summary


def _unpaired_ef(lm: Any) -> dict[str, Any] | None:
    """EF from the largest-area ED and the smallest-area ES when the loop holds no ED followed by an ES.

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
        "ef_simpson": ejection_fraction(a.volume_simpson, b.volume_simpson),
        "ef_area_length": ejection_fraction(a.volume_area_length, b.volume_area_length),
        "note": "no ED followed by ES inside the loop; ED and ES of neighbouring beats",
    }
