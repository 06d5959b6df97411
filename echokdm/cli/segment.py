"""``echokdm segment --dicom study.dcm --out DIR``: LV cavity, myocardium and LA in every frame, plus EF."""

from __future__ import annotations

import click

from echokdm.defaults import SEG_WEIGHTS


@click.command("segment")
@click.option(
    "--dicom",
    "cine",
    required=True,
    type=click.Path(readable=False),
    help="Cine loop (DICOM, or NIfTI/AVI/MP4/GIF/frames).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--weights", default=SEG_WEIGHTS, show_default=True,
              help="Shipped weights name, a model.safetensors, or an `echokdm train seg --out DIR` folder.")
@click.option("--keypoints", "n_keypoints", type=click.Choice(["20", "40"]), default="20", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing echokdm output folder.")
@click.option(
    "--anonymize",
    is_flag=True,
    help="De-identify the DICOM SEG and SR (DICOM PS3.15 basic profile) and keep the input path out of the JSON files.",
)
def command(cine: str, out: str, weights: str, n_keypoints: str, overwrite: bool, anonymize: bool) -> None:
    """Segment a cine loop with the built-in segmenter.

    Writes segmentation.nii.gz, overlay.gif, segmentation.json and the metrics report (report.json/.csv,
    keypoints, area_curve.png, overlay_ed_es.png) to --out; for a DICOM cine also segmentation_seg.dcm
    (DICOM SEG) and measurements_sr.dcm (DICOM SR), new series in the cine's study.
    """
    from echokdm.segment import segment_study

    s = segment_study(
        cine, out, weights=weights, n_keypoints=int(n_keypoints), overwrite=overwrite, anonymize=anonymize
    )
    click.echo(f"segmented {s['n_frames']} frames -> {out}")
    if s["metrics_error"]:
        click.echo(f"no metrics: {s['metrics_error']}")
    else:
        if s["ef_simpson"] is not None:
            ef = f"EF {s['ef_simpson']:.1f}% (Simpson), {s['ef_area_length']:.1f}% (area-length)"
        elif s["ef_unpaired"]:
            u = s["ef_unpaired"]
            ef = (
                f"no complete beat; EF from ES {u['es']} and ED {u['ed']}: "
                f"{u['ef_simpson']:.1f}% (Simpson), {u['ef_area_length']:.1f}% (area-length)"
            )
        else:
            ef = "no EF (no ED and ES found)"
        click.echo(
            f"ED frames {s['ed_frames']}, ES frames {s['es_frames']}, {ef}, area jitter {s['lv_area_jitter']:.3f}"
        )
