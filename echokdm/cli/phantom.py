"""``echokdm phantom``: write labelled synthetic A4C loops in the DICOM, CAMUS or EchoNet-Dynamic layout."""

from __future__ import annotations

import click

from echokdm.cli import SEED


@click.command("phantom")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=str), help="Output folder.")
@click.option("--n", "n", type=int, default=10, show_default=True, help="Number of loops.")
@click.option(
    "--layout",
    default="dicom",
    show_default=True,
    help="dicom, camus (2023 NIfTI release), camus2019 (2019 MHD release) or echonet.",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="First seed inside the split's seed block.")
@click.option("--split", default="train", show_default=True, help="train, val or test (disjoint seeds).")
@click.option("--ef-min", type=float, default=15.0, show_default=True, help="Smallest target EF (%), >= 5.")
@click.option("--ef-max", type=float, default=80.0, show_default=True, help="Largest target EF (%), <= 90.")
@click.option("--size", type=int, default=None, help="Image side in pixels [default: 256; echonet: 112].")
@click.option("--frames", type=int, default=None, help="Frames per loop [default: 30-60 per beat].")
@click.option("--renderer", "renderer", default="scatter", show_default=True,
              help="Image-formation model(s), comma-separated (scatter, cole); each loop draws one.")
@click.option("--no-ddf", is_flag=True, help="Do not write displacement fields (dicom layout).")
@click.option("--overwrite", is_flag=True, help="Replace an existing echokdm output folder.")
def command(out_dir, n, layout, seed, split, ef_min, ef_max, size, frames, renderer, no_ddf, overwrite) -> None:
    """Generate N phantom loops with exact labels, motion, ED/ES and EF, plus a manifest.csv."""
    from echokdm.phantom.layouts import generate

    rows = generate(
        out_dir, n, layout, seed=seed, split=split, size=size, frames=frames, ef_range=(ef_min, ef_max),
        renderers=tuple(r.strip() for r in renderer.split(",")), ddf=not no_ddf, overwrite=overwrite,
    )
    efs = [float(r["ef"]) for r in rows]
    click.echo(f"wrote {len(rows)} {layout} loop(s) to {out_dir} (EF {min(efs):.1f}-{max(efs):.1f}%); see manifest.csv")
