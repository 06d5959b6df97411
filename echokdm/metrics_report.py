"""The files of ``echokdm metrics``: keypoints, report (JSON + CSV), area curve and contour overlays.

Report spec: ``data_specs/metrics_report.schema.json``. Written only through an
:class:`echokdm.outputs.OutputDir`.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from echokdm.keypoints.draw import plot_keypoints
from echokdm.keypoints.files import KeypointTrack, save_keypoints
from echokdm.metrics import LoopMetrics
from echokdm.outputs import OutputDir
from echokdm.render import plot_curve

FORMAT = "echokdm-metrics-report"
VERSION = 1
FILES = {
    "keypoints_json": "keypoints.json",
    "keypoints_csv": "keypoints.csv",
    "report_json": "report.json",
    "report_csv": "report.csv",
    "frames_csv": "frames.csv",
    "area_plot": "area_curve.png",
    "overlay": "overlay_ed_es.png",
}


def metrics_report(
    lm: LoopMetrics, image_size: tuple[int, int], inputs: dict[str, str | None], spacing_source: str | None
) -> dict[str, Any]:
    """The report of one loop as a JSON-ready dict (schema: ``data_specs/metrics_report.schema.json``).

    Args:
        lm: the loop's metrics.
        image_size: (H, W).
        inputs: ``{"segmentation": path, "dicom": path or None}``.
        spacing_source: where the spacing came from, or None when uncalibrated.
    """
    phase = _phase_of(lm)
    return {
        "format": FORMAT,
        "version": VERSION,
        "inputs": inputs,
        "n_frames": len(lm.frames),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "n_keypoints": int(lm.keypoints.shape[1]),
        "spacing_mm": list(lm.spacing_mm) if lm.spacing_mm else None,
        "spacing_source": spacing_source if lm.spacing_mm else None,
        "frame_time_ms": lm.frame_time_ms,
        "units": lm.units.as_dict(),
        "heart_rate_bpm": lm.phases.heart_rate_bpm,
        "period_frames": lm.phases.period_frames,
        "ed_frames": list(lm.phases.ed),
        "es_frames": list(lm.phases.es),
        "beats": lm.beats(),
        "summary": lm.summary(),
        "frames": [
            {
                "frame": t,
                "phase": phase.get(t),
                "area": m.area,
                "long_axis": m.long_axis,
                "volume_area_length": m.volume_area_length,
                "volume_simpson": m.volume_simpson,
                "endocardial_length": m.endocardial_length,
            }
            for t, m in enumerate(lm.frames)
        ],
        "files": dict(FILES),
    }


def write_metrics(
    out: OutputDir, lm: LoopMetrics, report: dict[str, Any], backgrounds: np.ndarray, background_name: str
) -> None:
    """Write every file of ``echokdm metrics`` into ``out``.

    Args:
        out: the output folder.
        lm: the loop's metrics.
        report: from :func:`metrics_report`.
        backgrounds: (T, H, W) frames in [0, 1] (or label maps) under the overlays.
        background_name: what the backgrounds are, for the overlay titles (e.g. "DICOM", "labels").
    """
    track = KeypointTrack(
        keypoints=lm.keypoints,
        frames=list(range(len(lm.frames))),
        spacing_mm=lm.spacing_mm,
        image_size=tuple(report["image_size"]),
        phases=_phase_of(lm),
    )
    for key, fmt in (("keypoints_json", "json"), ("keypoints_csv", "csv")):
        with out.atomic(FILES[key]) as tmp:
            save_keypoints(tmp, track, fmt=fmt)
    out.write_json(FILES["report_json"], report)
    u = lm.units
    beat_cols = {
        "ed": "ed_frame", "es": "es_frame",
        "edv_area_length": f"edv_area_length_{u.volume}", "esv_area_length": f"esv_area_length_{u.volume}",
        "ef_area_length": "ef_area_length_percent",
        "edv_simpson": f"edv_simpson_{u.volume}", "esv_simpson": f"esv_simpson_{u.volume}",
        "ef_simpson": "ef_simpson_percent", "gls": "gls_percent",
        "ed_area": f"ed_area_{u.area}", "es_area": f"es_area_{u.area}",
        "ed_long_axis": f"ed_long_axis_{u.length}", "es_long_axis": f"es_long_axis_{u.length}",
    }  # fmt: skip
    hr = report["heart_rate_bpm"]
    rows = [
        {"beat": i, **{beat_cols[k]: v for k, v in b.items()}, "heart_rate_bpm": hr}
        for i, b in enumerate(report["beats"])
    ]
    out.write_text(FILES["report_csv"], _csv(["beat", *beat_cols.values(), "heart_rate_bpm"], rows))
    frame_cols = {
        "frame": "frame", "phase": "phase", "area": f"area_{u.area}", "long_axis": f"long_axis_{u.length}",
        "volume_area_length": f"volume_area_length_{u.volume}", "volume_simpson": f"volume_simpson_{u.volume}",
        "endocardial_length": f"endocardial_length_{u.length}",
    }  # fmt: skip
    frows = [{frame_cols[k]: v for k, v in f.items()} for f in report["frames"]]
    out.write_text(FILES["frames_csv"], _csv(list(frame_cols.values()), frows))
    with out.atomic(FILES["area_plot"]) as tmp, open(tmp, "wb") as f:  # a file object: PNG whatever the temp name
        plot_curve(
            f,
            lm.areas,
            f"LV cavity area ({u.area})",
            lm.frame_time_ms,
            marks={"ED": lm.phases.ed, "ES": lm.phases.es},
            title=_title(report),
        )
    ed, es = lm.phases.beats[0] if lm.phases.beats else (lm.phases.ed[0], lm.phases.es[0])
    with out.atomic(FILES["overlay"]) as tmp:
        plot_keypoints(
            tmp,
            [backgrounds[ed], backgrounds[es]],
            [lm.keypoints[ed], lm.keypoints[es]],
            [f"ED frame {ed} ({background_name})", f"ES frame {es} ({background_name})"],
        )


def _phase_of(lm: LoopMetrics) -> dict[int, str]:
    return {**{t: "ED" for t in lm.phases.ed}, **{t: "ES" for t in lm.phases.es}}


def _title(report: dict[str, Any]) -> str:
    s = report["summary"]
    parts = []
    if s["ef_simpson"] is not None:
        parts.append(f"EF Simpson {s['ef_simpson']:.1f}%  area-length {s['ef_area_length']:.1f}%  GLS {s['gls']:.1f}%")
    if report["heart_rate_bpm"]:
        parts.append(f"HR {report['heart_rate_bpm']:.0f}/min")
    return "   ".join(parts)


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def run_metrics(
    seg: str,
    out: str,
    dicom: str | None = None,
    n_keypoints: int = 20,
    spacing_mm: tuple[float, float] | None = None,
    frame_time_ms: float | None = None,
    septum_side: str = "left",
    overwrite: bool = False,
    ed_es: tuple[int, int] | None = None,
    seg_2ch: str | None = None,
) -> dict[str, Any]:
    """Everything ``echokdm metrics`` does: read, check, measure, write.

    Args:
        seg: segmentation of a loop (any :func:`echokdm.io.read_segmentation` input).
        out: output folder.
        dicom: the loop's cine (any :func:`echokdm.io.read_cine` input), for spacing, timing and overlays.
        n_keypoints: 20 or 40.
        spacing_mm: (dy, dx) overriding the files' spacing.
        frame_time_ms: overriding the cine's frame time.
        septum_side: see :func:`echokdm.keypoints.extract_keypoints`.
        overwrite: replace an earlier output folder of echokdm.
        ed_es: (ED, ES) frame indices instead of finding them (a 2-frame segmentation is an ED/ES pair whose
            larger cavity is ED).
        seg_2ch: segmentation of the apical two-chamber view (loop or ED/ES pair): adds the biplane Simpson
            volumes and EF (report key ``biplane``).

    Returns:
        The report (also written as ``report.json``).

    Raises:
        InputError: a single frame, a segmentation that does not match the loop, missing labels.
        OutputError: an output folder that cannot be used.
    """
    from echokdm.defaults import FRAME_TIME_MS_RANGE, SPACING_MM_RANGE
    from echokdm.errors import InputError
    from echokdm.io.load import in_range, physical
    from echokdm.io.segmentation import read_segmentation
    from echokdm.metrics import biplane_ef, measure_loop

    if n_keypoints not in (20, 40):
        raise InputError(f"--keypoints must be 20 or 40, got {n_keypoints}")
    (ft_lo, ft_hi), (sp_lo, sp_hi) = FRAME_TIME_MS_RANGE, SPACING_MM_RANGE
    if frame_time_ms is not None and in_range(frame_time_ms, FRAME_TIME_MS_RANGE) is None:
        raise InputError(f"--frame-time must be {ft_lo:g} to {ft_hi:g} ms, got {frame_time_ms:g}")
    if spacing_mm and any(in_range(v, SPACING_MM_RANGE) is None for v in spacing_mm):
        raise InputError(f"--spacing must be {sp_lo:g} to {sp_hi:g} mm, got {' '.join(f'{v:g}' for v in spacing_mm)}")
    OutputDir.check(out, overwrite, inputs=[seg, dicom])
    labels, seg_meta = read_segmentation(seg, image_only=False)
    seg_meta.update(physical(seg_meta))
    if labels.ndim == 2 or labels.shape[0] == 1:
        raise InputError(f"{seg}: holds a single frame; echokdm metrics needs the segmentation of a loop (T, H, W)")
    sp, sp_source = (list(spacing_mm), "option") if spacing_mm else (seg_meta["spacing_mm"], seg_meta["spacing_source"])
    backgrounds, background_name = labels.astype(np.float32), "labels"
    if dicom is not None:
        from echokdm.io import read_cine  # load_cine's reader without torch: same frames and meta

        frames, meta = read_cine(dicom)
        if frames.shape != labels.shape:
            t, h, w = labels.shape
            raise InputError(
                f"{seg}: segmentation has {t} frames of {w}x{h} but {dicom} has {frames.shape[0]} frames of "
                f"{frames.shape[2]}x{frames.shape[1]}; they must match frame for frame"
            )
        if not spacing_mm and meta.get("spacing_mm"):
            sp, sp_source = list(meta["spacing_mm"]), f"cine ({meta.get('spacing_source')})"
        frame_time_ms = frame_time_ms or meta.get("frame_time_ms")
        backgrounds, background_name = frames.astype(np.float32) / 255.0, "cine"
    try:
        lm = measure_loop(labels, n_keypoints, sp, frame_time_ms, septum_side, ed_es)
    except InputError as e:  # name the file whose labels cannot be measured
        raise InputError(f"{seg}: {e}") from None
    biplane = None
    if seg_2ch is not None:
        labels_2ch, meta_2ch = read_segmentation(seg_2ch, image_only=False)
        sp_2ch = list(spacing_mm) if spacing_mm else meta_2ch["spacing_mm"]
        try:
            lm_2ch = measure_loop(labels_2ch, n_keypoints, sp_2ch, frame_time_ms, septum_side)
            biplane = {"segmentation_2ch": str(seg_2ch), **biplane_ef(lm, lm_2ch)}
        except InputError as e:
            raise InputError(f"{seg_2ch}: {e}") from None
    out_dir = OutputDir(out, overwrite=overwrite, inputs=[seg, dicom, seg_2ch])
    inputs = {"segmentation": str(seg), "dicom": None if dicom is None else str(dicom)}
    report = metrics_report(lm, labels.shape[1:], inputs, sp_source if sp else None)
    if biplane is not None:
        report["biplane"] = biplane
    write_metrics(out_dir, lm, report, backgrounds, background_name)
    return report
