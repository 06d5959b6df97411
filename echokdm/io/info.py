"""A JSON-ready summary of a cine loop (the ``echokdm info`` record, schema data_specs/info.schema.json)."""

from __future__ import annotations

import os
from typing import Any

from echokdm.io.load import read_cine


def cine_info(path: str | os.PathLike) -> dict[str, Any]:
    """Describe a loop: frames, timing, size, spacing, encoding, sector. No patient fields.

    Args:
        path: any input :func:`echokdm.io.read_cine` accepts.

    Returns:
        A dict following ``data_specs/info.schema.json``.

    Raises:
        InputError, UnsupportedError: as :func:`echokdm.io.read_cine`.
    """
    frames, meta = read_cine(path, blank_outside_sector=False)
    t, h, w = frames.shape
    frame_time = meta.get("frame_time_ms")
    original = meta.get("original_shape") or [t, h, w]
    return {
        "file": str(path),
        "format": meta["format"],
        "sop_class": meta.get("sop_class"),
        "manufacturer": meta.get("manufacturer"),
        "model": meta.get("model"),
        "frames": t,
        "is_loop": t > 1,
        "frame_time_ms": frame_time,
        "frame_time_source": meta["frame_time_source"],
        "frame_rate_hz": meta["frame_rate_hz"],
        "duration_s": t * frame_time / 1000.0 if frame_time else None,
        "heart_rate_bpm": meta.get("heart_rate_bpm"),
        "width": w,
        "height": h,
        "samples_per_pixel": int(original[3]) if len(original) > 3 else 1,
        "spacing_mm": meta.get("spacing_mm"),
        "spacing_source": meta["spacing_source"],
        "spacing_warning": meta.get("spacing_warning"),
        "transfer_syntax": meta.get("transfer_syntax"),
        "transfer_syntax_uid": meta.get("transfer_syntax_uid"),
        "photometric_interpretation": meta.get("photometric_interpretation"),
        "region_box": meta.get("region_box"),
        "sector_box": meta["sector_box"],
        "sector_fraction": float(meta["sector_mask"].mean()),
    }
