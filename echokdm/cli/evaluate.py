"""``echokdm evaluate``: score predictors against baselines on held-out cases and write a report."""

from __future__ import annotations

import click

from echokdm.cli import SEED, device_option
from echokdm.evaluate.tasks import TASKS


@click.command(name="evaluate")
@click.option(
    "--data",
    required=True,
    help="phantom-test[:N] (frozen phantom test split, default 50 cases) "
    "or a folder (CAMUS, EchoNet-Dynamic, echokdm phantom).",
)
@click.option("--predictors", default="copy,tps,oracle", show_default=True, help="Comma-separated predictor names.")
@click.option(
    "--report",
    "report",
    required=True,
    type=click.Path(file_okay=False),
    help="Report folder (resumed when it holds the same run).",
)
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default="es",
    show_default=True,
    help="es: ED->ES; ed: ES->ED; sequence: ED->every frame to ES; target-ef: ED + EF -> ES.",
)
@click.option(
    "--keypoints",
    "n_keypoints",
    type=click.Choice(["20", "40"]),
    default="40",
    show_default=True,
    help="Endocardial (20) or endo + epicardial (40) keypoints (EchoNet tracings: wall from the built-in segmenter).",
)
@click.option(
    "--segmenter",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "builtin", "atlas"]),
    help="Segmenter of predictions; auto = built-in when it has weights, else atlas registration.",
)
@click.option(
    "--prior",
    type=click.Path(dir_okay=False),
    default=None,
    help="Keypoint motion prior file for --task target-ef (default: the shipped one).",
)
@click.option("--size", type=int, default=128, show_default=True, help="Working grid edge in pixels.")
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="Seed of every random choice (same seed, same report)."
)
@click.option(
    "--seg-weights",
    default="seg_a4c",
    show_default=True,
    help="Built-in segmenter weights: shipped name, model.safetensors or an `echokdm train seg --out DIR` folder.",
)
@click.option(
    "--weights",
    "kdm_weights",
    default=None,
    help="KDM weights of the kdm, kdm-adapt and k2f-warp predictors, as predict's --weights: a folder named like "
    "the shipped files, or one trained flowae/k2f/f2i (`echokdm train --out DIR` or its model.safetensors).",
)
@device_option()
@click.option("--overwrite", is_flag=True, help="Replace an existing report instead of resuming it.")
def command(
    data: str,
    predictors: str,
    report: str,
    task: str,
    n_keypoints: str,
    segmenter: str,
    prior: str | None,
    size: int,
    seed: int,
    seg_weights: str,
    kdm_weights: str | None,
    device: str,
    overwrite: bool,
) -> None:
    """Evaluate predictors (copy, tps, oracle, ...) and write scores.csv, summary.md and plots."""
    from echokdm.evaluate import run_evaluation

    names = [p.strip() for p in predictors.split(",") if p.strip()]
    result = run_evaluation(
        data, report, predictors=names, task=task, segmenter=segmenter, n_keypoints=int(n_keypoints),
        size=size, seed=seed, overwrite=overwrite, prior=prior, device=device, seg_weights=seg_weights,
        kdm_weights=kdm_weights,
    )
    if result.resumed:
        click.echo(f"resumed: {result.resumed} case(s) were already scored in {report}")
    click.echo(result.summary.read_text())
    click.echo(f"report written to {result.summary.parent}")
