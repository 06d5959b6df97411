"""``echokdm metrics``: keypoints, phases, volumes, EF and GLS from the segmentation of a loop."""

from __future__ import annotations

import click


@click.command("metrics")
@click.option("--seg", required=True, type=click.Path(path_type=str, readable=False),
              help="Segmentation of the loop: NIfTI, MHD, DICOM SEG or a folder of PNG frames.")
@click.option("--dicom", type=click.Path(path_type=str, readable=False),
              help="The loop itself (DICOM cine or any readable loop): spacing, timing, overlays.")
@click.option("--keypoints", "n_keypoints", type=click.Choice(["20", "40"]), default="20", show_default=True,
              help="Endocardium (20) or endo + epicardium (40).")
@click.option("--out", required=True, type=click.Path(path_type=str), help="Output folder.")
@click.option("--spacing", nargs=2, type=float, help="Pixel spacing DY DX in mm (overrides the files).")
@click.option("--frame-time", type=float, help="Frame time in ms (overrides the cine).")
@click.option("--septum-side", type=click.Choice(["left", "right"]), default="left", show_default=True,
              help="Image side of the septum (left in the standard A4C display).")
@click.option("--ed-es", nargs=2, type=int, default=None,
              help="ED and ES frame indices (default: found on the cavity area; of 2 frames, the larger is ED).")
@click.option("--seg-2ch", type=click.Path(path_type=str, readable=False), default=None,
              help="Segmentation of the two-chamber view (loop or ED/ES pair): biplane Simpson EF with --seg.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier output folder.")
def command(seg, dicom, n_keypoints, out, spacing, frame_time, septum_side, ed_es, seg_2ch, overwrite) -> None:
    """Keypoints, ED/ES, volumes (area-length, Simpson), EF and GLS from the segmentation of a loop or of an
    ED/ES pair (2 frames, as CAMUS labels them); biplane Simpson EF with --seg-2ch."""
    from echokdm.metrics_report import run_metrics

    spacing = tuple(spacing) if spacing else None
    report = run_metrics(
        seg, out, dicom, int(n_keypoints), spacing, frame_time, septum_side, overwrite, ed_es or None, seg_2ch
    )
    s, u = report["summary"], report["units"]
    hr = report["heart_rate_bpm"]
    click.echo(
        f"ED frames {report['ed_frames']}, ES frames {report['es_frames']}"
        + (f", heart rate {hr:.0f}/min" if hr else "")
    )
    if s["n_beats"]:
        click.echo(
            f"EF Simpson {s['ef_simpson']:.1f}%, area-length {s['ef_area_length']:.1f}%, GLS {s['gls']:.1f}% "
            f"({s['n_beats']} beat(s), volumes in {u['volume']})"
        )
    else:
        click.echo("no complete ED -> ES beat in the loop: EF and GLS not measured")
    if "biplane" in report:
        b = report["biplane"]
        volumes = f"EDV {b['edv_biplane']:.4g}, ESV {b['esv_biplane']:.4g}"
        click.echo(f"EF biplane Simpson {b['ef_biplane']:.1f}% ({volumes})")
    click.echo(f"wrote {out}")
