"""``echokdm train MODEL --config FILE``: train a registered model (alone or under torchrun)."""

from __future__ import annotations

import os

import click

from echokdm.cli import device_option
from echokdm.errors import InputError


@click.command("train")
@click.argument("model")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML config (see --print-config).")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [default: runs/MODEL].")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing echokdm output folder.")
@click.option(
    "--stop-after-epoch",
    type=click.IntRange(min=1),
    default=None,
    help="Stop once this many epochs are done (resume later with --resume).",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    help="KIND:PATH data source (repeatable; replaces data.sources): echonet:DIR, camus:DIR, cine-folder:DIR, "
    "phantom:N.",
)
@click.option(
    "--init",
    default=None,
    help="Fine-tune from these weights: shipped name or .safetensors file (without --config: the model's fine-tune "
    "settings, e.g. seg with light augmentation, 32 samples per loop).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Number of epochs (replaces train.epochs).")
@device_option(default=None, torchrun=True)
@click.option("--print-config", is_flag=True, help="Print every config field with its default and exit.")
def command(
    model: str,
    config: str | None,
    out: str | None,
    resume: bool,
    overwrite: bool,
    stop_after_epoch: int | None,
    data: tuple[str, ...],
    init: str | None,
    epochs: int | None,
    device: str | None,
    print_config: bool,
) -> None:
    """Train MODEL (one of the registered models, e.g. seg).

    Runs alone, or as every rank of `torchrun --nproc_per_node N -m echokdm train ...` (DDP: gloo on
    CPU, NCCL on GPU). Writes config.yaml, metrics.csv, checkpoints/ and model.safetensors to --out; the
    model.safetensors (or the --out folder) is what `--weights` of segment/predict and `--seg-weights` of
    evaluate take. Fine-tune on your own data, e.g.:

        echokdm train seg --data echonet:/data/EchoNet-Dynamic --init seg_a4c --epochs 5 --out runs/seg_ft
    """
    from echokdm.config import describe_config
    from echokdm.train import shutdown_distributed, task_class, train

    if print_config:
        click.echo(describe_config(task_class(model).config_class))
        return
    from echokdm.train.sources import parse_data_option

    if config is None and not data:
        raise InputError(
            "--config FILE or --data KIND:PATH is required (echokdm train MODEL --print-config shows the fields)"
        )
    sources = [parse_data_option(d) for d in data] if data else None
    try:
        result = train(model, config, out or os.path.join("runs", model), resume=resume, overwrite=overwrite,
                       stop_after_epoch=stop_after_epoch, sources=sources, init=init, epochs=epochs, device=device)
    finally:
        shutdown_distributed()
    if int(os.environ.get("RANK", "0")) == 0:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if k.startswith(("train_", "val_")))
        click.echo(f"trained {model} for {result.epochs_done} epochs -> {result.out} ({shown})")
