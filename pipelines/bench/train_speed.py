#!/usr/bin/env python3
"""Training throughput of every trainable model (issue #20): samples/s of ``echokdm train NAME``.

    python pipelines/bench/train_speed.py [--device cpu] [--threads 2] [--loops 4] [--out /tmp/train_speed]

Each model trains one epoch with its shipped config (``pipelines/configs/NAME.yaml``: model size, batch size,
crop, threads) on ``--loops`` phantom training loops without validation; a first epoch fills the data cache and
warms up, the second is timed (``samples_per_s`` of its ``metrics.csv``: optimiser steps x batch / seconds). The
phantom's exact flows stand in for OF-net flows where a config asks for them, so no model waits on another. The
machine's load average is printed with the table: on a shared machine the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle threads sleep (shared CPUs)
from pathlib import Path

import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: registry name -> shipped config file
MODELS = {"seg": "seg.yaml", "ofnet": "ofnet.yaml", "flowae": "flowae.yaml", "k2f": "k2f.yaml", "f2i": "f2i.yaml",
          "k2i": "k2i.yaml"}  # fmt: skip


def run_config(name: str, loops: int, threads: int, device: str, cache: Path) -> dict:
    """The shipped config of ``name`` cut to one epoch on ``loops`` training loops, no validation."""
    cfg = yaml.safe_load((CONFIGS / MODELS[name]).read_text())
    cfg["train"].update(epochs=1, threads=threads, device=device)
    data = cfg.setdefault("data", {})
    data.update(train_loops=loops, val_loops=0, cache_dir=str(cache / ("seg" if name == "seg" else "kdm")))
    if data.get("flow_source") == "ofnet":
        data["flow_source"] = "truth"
    data.pop("ofnet_weights", None)
    data.pop("flow_vae_weights", None)  # the shipped flow autoencoder
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    ap.add_argument("--loops", type=int, default=4, help="phantom training loops per model")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    ap.add_argument("--out", type=Path, default=Path("/tmp/train_speed"), help="scratch folder")
    args = ap.parse_args()
    from echokdm.train import train

    rows = []
    for name in args.models.split(","):
        cfg = run_config(name, args.loops, args.threads, args.device, args.out / "cache")
        train(name, cfg, args.out / name, overwrite=True)  # fills the cache, warms up
        result = train(name, cfg, args.out / name, overwrite=True)
        sps = result.metrics["samples_per_s"]
        batch = cfg["train"]["batch_size"]
        size = cfg["data"].get("crop") or cfg.get("model", {}).get("size") or cfg["data"].get("size", "")
        rows.append(f"| {name} | {batch} | {size} | {sps:.1f} |")
        print(rows[-1], flush=True)
    load = os.getloadavg()
    print(f"\ndevice {args.device}, {args.threads} threads, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print("| model | batch | crop or size (px) | samples/s |\n|---|---|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
