"""``echokdm info``: describe a cine loop (frames, timing, spacing, encoding, sector)."""

from __future__ import annotations

from typing import Any

import click

from echokdm.errors import InputError


@click.command("info")
@click.argument("file", required=False, type=click.Path(path_type=str, readable=False))
@click.option("--sample", is_flag=True, help="Describe the bundled sample loop (a real SonoSite cine).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema: data_specs/info.schema.json).")
def command(file: str | None, sample: bool, as_json: bool) -> None:
    """Describe FILE: a DICOM cine, NIfTI/MHD sequence, AVI/MP4/GIF video, or folder of PNG/JPEG frames."""
    from echokdm.data import sample_path
    from echokdm.io.info import cine_info
    from echokdm.outputs import json_text

    if sample == (file is not None):
        raise InputError("give either FILE or --sample")
    info = cine_info(sample_path("sonosite") if sample else file)
    click.echo(json_text(info) if as_json else format_info(info))


def format_info(info: dict[str, Any]) -> str:
    """The human-readable form of a :func:`echokdm.io.info.cine_info` record."""
    ft = info["frame_time_ms"]
    spacing = info["spacing_mm"]
    x0, y0, x1, y1 = info["sector_box"]
    rows = [
        ("file", info["file"]),
        ("format", " ".join(v for v in (info["format"].upper(), info["sop_class"]) if v)),
        ("equipment", " ".join(v for v in (info["manufacturer"], info["model"]) if v) or "unknown"),
        ("frames", f"{info['frames']}" + ("" if info["is_loop"] else " (a single image, not a loop)")),
        ("frame time", f"{ft:.3f} ms (from {info['frame_time_source']})" if ft else "unknown"),
        ("frame rate", f"{info['frame_rate_hz']:.2f} /s" if ft else "unknown"),
        ("duration", f"{info['duration_s']:.3f} s" if ft else "unknown"),
        ("heart rate", f"{info['heart_rate_bpm']:g} /min" if info["heart_rate_bpm"] else "not recorded"),
        ("size", f"{info['width']} x {info['height']} pixels (W x H), {info['samples_per_pixel']} sample(s)/pixel"),
        (
            "spacing",
            f"{spacing[0]:.4f} x {spacing[1]:.4f} mm (dy x dx) from {info['spacing_source']}"
            if spacing
            else f"unknown ({info['spacing_source']})",
        ),
    ]
    if info["spacing_warning"]:
        rows.append(("  warning", info["spacing_warning"]))
    if info["transfer_syntax"]:
        rows.append(("transfer syntax", f"{info['transfer_syntax']} ({info['transfer_syntax_uid']})"))
    if info["photometric_interpretation"]:
        rows.append(("photometric", info["photometric_interpretation"]))
    rows.append(("sector box", f"x {x0}..{x1}, y {y0}..{y1} ({100 * info['sector_fraction']:.0f}% of the image)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
