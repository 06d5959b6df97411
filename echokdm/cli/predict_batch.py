"""``echokdm predict-batch --manifest studies.csv --out DIR`` (or ``--dicomweb URL [--study UID ...] [--store]``):
predict every study of a manifest or every ultrasound cine of a DICOMweb server (torchrun shards)."""

from __future__ import annotations

import os

import click

from echokdm.cli import SEED, device_option
from echokdm.defaults import DEFAULT_STEPS, K2F_STEPS


@click.command("predict-batch")
@click.option(
    "--manifest",
    type=click.Path(readable=False),
    help="CSV: study_id, dicom [, phase, target_ef, keypoints, seg, source_frame, frames].",
)
@click.option(
    "--dicomweb",
    metavar="URL",
    help="DICOMweb root (e.g. http://localhost:8042/dicom-web) to take the ultrasound cines from instead of a "
    "manifest; token in ECHOKDM_DICOMWEB_TOKEN or ECHOKDM_DICOMWEB_TOKEN_FILE.",
)
@click.option(
    "--study", "studies", multiple=True, metavar="UID", help="Study Instance UID on --dicomweb (repeat; default: all)."
)
@click.option(
    "--store", is_flag=True, help="Store the prediction cine, SR and SEG back into each study on --dicomweb (STOW-RS)."
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Batch folder: one sub-folder per study (resumable)."
)
@click.option("--steps", type=int, default=DEFAULT_STEPS, show_default=True, help="Denoising steps of F2I.")
@click.option("--k2f-steps", type=int, default=K2F_STEPS, show_default=True, help="Denoising steps of K2F.")
@click.option("--ef-check/--no-ef-check", default=True, show_default=True,
              help="Make a prediction whose measured EF misses its keypoints' by more than 5 points again with K2F "
              "held to the keypoints, and keep the closer one (docs/predict.md, 'The EF check').")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the sampling noise.")
@device_option(torchrun=True)
@click.option("--weights", "weights_dir", type=click.Path(), default=None,
              help="Folder of weights named like the shipped ones (default: the shipped weights).")
@click.option(
    "--anonymize",
    is_flag=True,
    help="De-identify every prediction.dcm (DICOM PS3.15 basic profile) and keep input paths out of the reports.",
)
@click.pass_context
def command(
    ctx: click.Context, manifest, dicomweb, studies, store, out, steps, k2f_steps, ef_check, seed, device, weights_dir,
    anonymize,
) -> None:
    """Run `echokdm predict` for every study of a manifest (or every ultrasound cine on a DICOMweb server)
    into OUT/<study_id>/.

    Finished studies are skipped, so an interrupted batch continues where it stopped; a failing study is
    recorded with its reason and never stops the others. Writes summary.csv and failures.csv (and
    instances.csv for --dicomweb). Exits with status 1 when some study failed (or was not stored); under
    torchrun with 0 (torchrun would print a traceback for a rank's non-zero exit): read failures.csv.
    """
    from echokdm.cli.predict import command_line
    from echokdm.pacs import DicomWeb
    from echokdm.predict import PredictWeights
    from echokdm.predict_batch import predict_batch

    weights = PredictWeights.from_dir(weights_dir) if weights_dir else None
    server = DicomWeb.from_environment(dicomweb) if dicomweb else None
    r = predict_batch(manifest, out, dicomweb=server, studies=studies, store=store, steps=steps, k2f_steps=k2f_steps,
                      ef_check=ef_check, seed=seed, device=device, weights=weights, command=command_line(),
                      anonymize=anonymize)
    if r.not_predicted:
        click.echo(
            f"{len(r.not_predicted)} instance(s) not predicted (not ultrasound cines, or echokdm's own): "
            "see instances.csv"
        )
    click.echo(f"{len(r.done)} predicted, {len(r.skipped)} already done, {len(r.failed)} failed -> {out}")
    apart = r.neighbouring_beats
    if apart:
        studies = "1 study shows" if len(apart) == 1 else f"{len(apart)} studies show"
        more = f" and {len(apart) - 5} more" if len(apart) > 5 else ""
        click.echo(f"note: {studies} no ES after the ED; ED and ES come from neighbouring beats (es_frame < "
                   f"ed_frame in summary.csv): {', '.join(apart[:5])}{more}")
    for sid, reason in r.failed.items():
        click.echo(f"failed {sid}: {reason}", err=True)
    if r.failed and not os.environ.get("TORCHELASTIC_RUN_ID"):
        ctx.exit(1)
