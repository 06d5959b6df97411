"""The generic trainer: one process or many (torchrun + DDP), seeded, checkpointed and resumable.

Everything random is a function of ``train.seed`` and the epoch: the weights are drawn from the seed,
and before each epoch the global torch RNG, the sampler and the training set (``set_epoch``) are set
from ``(seed, epoch, rank)``. So a run resumed from an epoch checkpoint continues exactly as if it had
never stopped. Output folder::

    config.yaml          effective configuration (resuming checks it matches, bar RESUMABLE_CHANGES)
    metrics.csv          one row per epoch: lr, train loss, throughput, validation metrics
    checkpoints/         epoch_NNNN/ (model + optimizer, see echokdm.train.checkpoint) and latest.txt
    model.safetensors    final weights, with the task's model config in the metadata
    best.safetensors     weights of the best validation epoch (when there is validation)
    ranks.json           digest of each process's final weights (all equal, checked)
    tensorboard/         event files, when the tensorboard package is installed
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from echokdm.config import config_to_dict, dump_config
from echokdm.device import autocast, channels_last
from echokdm.errors import EchoKDMError, InputError
from echokdm.outputs import OutputDir, atomic_write
from echokdm.progress import progress
from echokdm.train.checkpoint import load_checkpoint, model_state, save_checkpoint
from echokdm.train.distributed import DistContext, init_distributed, unwrap
from echokdm.train.task import TrainConfig, TrainTask

#: config fields that may differ when resuming: more epochs, or how the run uses the machine
RESUMABLE_CHANGES = {
    "train.epochs", "train.threads", "train.num_workers", "train.device", "train.tensorboard",
    "train.keep_checkpoints", "train.val_every", "train.amp",
}  # fmt: skip


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        out: the output folder.
        epochs_done: epochs completed so far (over all resumed runs).
        metrics: the last epoch's row of ``metrics.csv``.
        weights_digest: sha256 of the final weights (same on every rank).
    """

    out: Path
    epochs_done: int
    metrics: dict[str, float]
    weights_digest: str


def cache_inside(out: Path, cache_dir: str) -> str:
    """A relative ``data.cache_dir`` lies inside the run's --out (a command writes nothing elsewhere); an absolute
    one is the user's explicit choice and stays; '' (no cache) stays."""
    return str(out / cache_dir) if cache_dir and not Path(cache_dir).is_absolute() else cache_dir


class Trainer:
    """Train a :class:`TrainTask` into an output folder.

    Args:
        task: the model's task (holds the run configuration).
        out: output folder (see module docstring).
        resume: continue from the newest checkpoint in ``out`` (a fresh start when there is none).
        overwrite: clear an existing echokdm folder at ``out`` first (ignored when resuming).
        name: registry name of the task, stored in the weights' metadata.
    """

    def __init__(
        self, task: TrainTask, out: str | os.PathLike, resume: bool = False, overwrite: bool = False, name: str = ""
    ) -> None:
        self.task = task
        self.cfg: TrainConfig = task.cfg.train
        self.out = Path(out)
        self.resume = resume
        self.overwrite = overwrite
        self.name = name or type(task).__name__

    def fit(self, stop_after_epoch: int | None = None) -> TrainResult:
        """Train until ``train.epochs`` (or until ``stop_after_epoch`` epochs are done, to resume later).

        Returns:
            A :class:`TrainResult`.

        Raises:
            EchoKDMError: unusable output folder, resumed config that differs, data too small for a batch.
        """
        cfg = self.cfg
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        ctx = init_distributed(cfg.device)
        outdir = self._prepare_output(ctx)
        data = getattr(self.task.cfg, "data", None)
        if hasattr(data, "cache_dir"):
            data.cache_dir = cache_inside(self.out, data.cache_dir)

        torch.manual_seed(cfg.seed)
        model = self.task.build_model()
        if cfg.init_weights:
            from echokdm.weights import load

            _load_init(model, load(cfg.init_weights).state_dict, cfg.init_weights)
        model = model.to(ctx.device)
        if cfg.amp:
            channels_last(model, ctx.device)
        optimizer = _make_optimizer(cfg, model)
        start_epoch, step, best = 0, 0, {"value": None, "epoch": None}
        ckpt = self._latest_checkpoint() if self.resume else None
        if ckpt is not None:
            info = load_checkpoint(ckpt, model, optimizer)
            start_epoch, step, best = info["epoch"], info["step"], info["best"]
        if ctx.distributed:
            model = DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)

        train_ds = self.task.train_dataset()
        sampler = DistributedSampler(
            train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed, drop_last=True
        )
        steps_per_epoch = len(sampler) // cfg.batch_size
        if steps_per_epoch == 0:
            raise InputError(
                f"training set of {len(train_ds)} samples gives no full batch of train.batch_size={cfg.batch_size} "
                f"on each of {ctx.world_size} process(es)"
            )
        val_ds = self.task.val_dataset()
        val_shard = Subset(val_ds, range(ctx.rank, len(val_ds), ctx.world_size)) if val_ds is not None else None
        total_steps = cfg.epochs * steps_per_epoch
        rows = self._read_metrics(start_epoch) if ctx.is_main else []
        writer = self._tensorboard(ctx, start_epoch)
        last_epoch = cfg.epochs if stop_after_epoch is None else min(cfg.epochs, stop_after_epoch)

        for epoch in range(start_epoch, last_epoch):
            _seed_everything(cfg.seed, epoch, ctx.rank)
            sampler.set_epoch(epoch)
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)
            loader = DataLoader(
                train_ds,
                batch_size=cfg.batch_size,
                sampler=sampler,
                num_workers=cfg.num_workers,
                drop_last=True,
                pin_memory=ctx.device.type == "cuda",
                generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch),
            )
            model.train()
            loss_sum, n_steps, t0 = torch.zeros(()), 0, time.perf_counter()
            for batch in progress(loader, f"epoch {epoch + 1}/{cfg.epochs}", disable=None if ctx.is_main else True):
                lr = _lr_at(cfg, step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with _autocast(cfg, ctx):
                    loss = self.task.training_step(model, batch, ctx.device)
                if not torch.isfinite(loss):
                    raise EchoKDMError(
                        f"training loss became {loss.item()} at epoch {epoch + 1}, step {step}; lower train.lr"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                loss_sum += loss.detach().float().cpu()
                n_steps += 1
                step += 1
            seconds = time.perf_counter() - t0
            totals = ctx.all_sum(torch.stack([loss_sum, torch.tensor(float(n_steps))]))
            row = {
                "epoch": epoch + 1,
                "step": step,
                "lr": _lr_at(cfg, step - 1, total_steps),
                "train_loss": float(totals[0] / totals[1]),
                "samples_per_s": n_steps * cfg.batch_size * ctx.world_size / max(seconds, 1e-9),
                "seconds": seconds,
            }
            is_last = epoch + 1 == cfg.epochs
            if val_shard is not None and ((epoch + 1) % cfg.val_every == 0 or is_last):
                row.update(self._validate(model, val_shard, ctx))
                value = row.get(f"val_{self.task.select_metric}")
                if value is not None and not math.isnan(value) and _better(value, best["value"], self.task.select_mode):
                    best = {"value": value, "epoch": epoch + 1}
                    if ctx.is_main:
                        self._save_weights(outdir, "best.safetensors", model)
            if ctx.is_main:
                info = {"epoch": epoch + 1, "step": step, "best": best, "world_size": ctx.world_size}
                self._save_checkpoint(model, optimizer, info)
                rows.append(row)
                self._write_metrics(outdir, rows)
                if writer is not None:
                    for k, v in row.items():
                        if k != "epoch":
                            writer.add_scalar(k, v, epoch + 1)
                    writer.flush()
            ctx.barrier()

        digest = _weights_digest(model)
        digests = ctx.gather(digest)
        if ctx.is_main:
            self._save_weights(outdir, "model.safetensors", model)
            outdir.write_json("ranks.json", {"weights_sha256": digests})
        if writer is not None:
            writer.close()
        if len(set(digests)) != 1:
            raise EchoKDMError(f"processes finished with different weights: {digests}")
        ctx.barrier()
        done = max(start_epoch, last_epoch)
        return TrainResult(out=self.out, epochs_done=done, metrics=rows[-1] if rows else {}, weights_digest=digest)

    # -- output folder ------------------------------------------------------------------------------------------

    def _prepare_output(self, ctx: DistContext) -> OutputDir | None:
        error = ""
        outdir = None
        if ctx.is_main:
            try:
                outdir = OutputDir(self.out, overwrite=self.overwrite and not self.resume, resume=self.resume)
                self._check_or_write_config(outdir)
            except EchoKDMError as e:
                error = str(e)
        errors = [e for e in ctx.gather(error) if e]
        if errors:
            raise InputError(errors[0])
        return outdir

    def _check_or_write_config(self, outdir: OutputDir) -> None:
        path = self.out / "config.yaml"
        current = config_to_dict(self.task.cfg)
        if self.resume and path.is_file():
            saved = yaml.safe_load(path.read_text())
            diff = sorted(_diff(saved, current) - RESUMABLE_CHANGES)
            if diff:
                raise InputError(f"cannot resume {self.out}: config differs from the saved one in {', '.join(diff)}")
        outdir.write_text("config.yaml", dump_config(self.task.cfg))

    def _latest_checkpoint(self) -> Path | None:
        pointer = self.out / "checkpoints" / "latest.txt"
        if not pointer.is_file():
            return None
        return self.out / "checkpoints" / pointer.read_text().strip()

    def _save_checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict) -> None:
        root = self.out / "checkpoints"
        name = f"epoch_{info['epoch']:04d}"
        save_checkpoint(root / name, model, optimizer, info)
        with atomic_write(root / "latest.txt") as tmp:
            tmp.write_text(name + "\n")
        old = sorted(p for p in root.glob("epoch_*") if p.is_dir() and p.name != name)
        for p in old[: max(0, len(old) - (self.cfg.keep_checkpoints - 1))]:
            shutil.rmtree(p)

    def _save_weights(self, outdir: OutputDir, name: str, model: torch.nn.Module) -> None:
        meta = {"task": self.name, "config": json.dumps(self.task.export_config())}
        with outdir.atomic(name) as tmp:
            save_file(model_state(model), str(tmp), metadata=meta)

    # -- logs ---------------------------------------------------------------------------------------------------

    def _read_metrics(self, upto_epoch: int) -> list[dict]:
        path = self.out / "metrics.csv"
        if not path.is_file() or upto_epoch == 0:
            return []
        with path.open() as f:
            rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
        return [dict(r, epoch=int(r["epoch"]), step=int(r["step"])) for r in rows if r["epoch"] <= upto_epoch]

    @staticmethod
    def _write_metrics(outdir: OutputDir, rows: list[dict]) -> None:
        columns: list[str] = []
        for r in rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        outdir.write_text("metrics.csv", buf.getvalue())

    def _tensorboard(self, ctx: DistContext, start_epoch: int):
        if not (ctx.is_main and self.cfg.tensorboard):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out / "tensorboard"), purge_step=start_epoch + 1)

    # -- validation ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _validate(self, model: torch.nn.Module, shard: Subset, ctx: DistContext) -> dict[str, float]:
        module = unwrap(model)
        module.eval()
        sums: dict[str, torch.Tensor] = {}
        loader = DataLoader(shard, batch_size=self.cfg.batch_size, shuffle=False, num_workers=self.cfg.num_workers,
                            pin_memory=ctx.device.type == "cuda")
        for batch in loader:
            with _autocast(self.cfg, ctx):
                values = self.task.validation_step(module, batch, ctx.device)
            for k, v in values.items():
                v = v.detach().double().cpu().reshape(-1)
                ok = ~torch.isnan(v)
                acc = sums.setdefault(k, torch.zeros(2, dtype=torch.float64))
                acc += torch.stack([v[ok].sum(), ok.sum().double()])
        names = sorted(set().union(*ctx.gather(sorted(sums))))
        stacked = (
            torch.stack([sums.get(k, torch.zeros(2, dtype=torch.float64)) for k in names])
            if names
            else torch.zeros(0, 2)
        )
        totals = ctx.all_sum(stacked)
        return {f"val_{k}": float(t[0] / t[1]) if t[1] > 0 else float("nan") for k, t in zip(names, totals)}


def _load_init(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"train.init_weights {source} do not fit the model: {str(e).splitlines()[0]}") from None


def _make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based): linear warm-up, then constant or cosine."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress_ = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_)))


def _seed_everything(seed: int, epoch: int, rank: int) -> None:
    s = (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**31)
    torch.manual_seed(s)
    np.random.seed(s)


def _autocast(cfg: TrainConfig, ctx: DistContext):
    return autocast(ctx.device, "auto" if cfg.amp else "fp32")


def _better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def _weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model_state(model).items()):
        h.update(k.encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _diff(a: object, b: object, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in set(a) | set(b):
            out |= _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return set() if a == b else {prefix}
