#!/usr/bin/env python3
"""GPU check: predict and train throughput, bf16 autocast against fp32, peak memory (one table).

    python pipelines/bench/gpu_check.py [--device cuda] [--out /tmp/gpu_check] [--quick]

1. predict: ``KDMPredictor`` (shipped weights, default steps) on phantom DICOM studies (256x256): studies/s
   for one study (median of 3 after a warm-up) and for 8 studies in a row (what ``predict-batch`` does on one
   GPU), under ``precision`` bf16 (the default on CUDA) and fp32, with the peak GPU memory;
2. train: ``echokdm train seg`` and ``echokdm train f2i`` for one epoch at the shipped configs' model sizes,
   ``train.amp`` on (bf16 + channels-last) and off: samples/s from metrics.csv, and the peak GPU memory.

``--quick`` shrinks everything (2 studies, a few training samples) to smoke-test the script on a CPU. Run
through ``pipelines/bench/gpu_check.sh``; paste the table into docs/training.md and the model card.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from echokdm.device import resolve_device


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def predict_rows(device: torch.device, out: Path, quick: bool) -> list[str]:
    from echokdm.phantom.layouts import generate
    from echokdm.predict import KDMPredictor

    n = 2 if quick else 8
    generate(out / "studies", n, "dicom", split="test", ddf=False, overwrite=True)
    studies = sorted((out / "studies").glob("*.dcm"))
    rows = []
    for precision in ("bf16", "fp32"):
        predictor = KDMPredictor.from_weights(device=str(device), precision=precision)
        predictor.predict(studies[0])  # warm-up (cuDNN autotuning, lazy init)
        _peak_reset(device)
        single = []
        for _ in range(1 if quick else 3):
            t0 = time.perf_counter()
            predictor.predict(studies[0])
            _sync(device)
            single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for study in studies:
            predictor.predict(study)
        _sync(device)
        row = f"| predict | {precision} | {1 / statistics.median(single):.2f} studies/s (1) | "
        rate = len(studies) / (time.perf_counter() - t0)
        rows.append(row + f"{rate:.2f} studies/s ({n}) | {_peak_gib(device):.2f} |")
        del predictor
    return rows


def train_rows(device: torch.device, out: Path, quick: bool) -> list[str]:
    from echokdm.train import train

    loops = 2 if quick else 16
    configs = {
        "seg": {"train": {"epochs": 1, "batch_size": 4 if quick else 32, "num_workers": 0 if quick else 4},
                "data": {"train_loops": loops, "val_loops": 0, "frames_per_loop": 4 if quick else 16,
                         "cache_dir": str(out / "cache_seg"), "workers": 1 if quick else 8}},
        "f2i": {"train": {"epochs": 1, "batch_size": 4 if quick else 32, "num_workers": 0 if quick else 4},
                "data": {"train_loops": loops, "val_loops": 0, "every": 3, "cache_dir": str(out / "cache_kdm"),
                         "flow_source": "truth", "crop": 64}},
    }  # fmt: skip
    rows = []
    for name, cfg in configs.items():
        for amp in (True, False):
            cfg["train"].update(amp=amp, device=str(device))
            train(name, cfg, out / f"{name}_{amp}", overwrite=True)  # first run fills the data cache
            _peak_reset(device)
            result = train(name, cfg, out / f"{name}_{amp}", overwrite=True)
            precision = "bf16" if amp and device.type == "cuda" else "fp32"
            sps = result.metrics["samples_per_s"]
            rows.append(f"| train {name} | {precision} | {sps:.1f} samples/s | | {_peak_gib(device):.2f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N (or cpu with --quick, to test the script)")
    ap.add_argument("--out", default="/tmp/gpu_check", help="scratch folder")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of this script")
    args = ap.parse_args()
    device = resolve_device(args.device)
    out = Path(args.out)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"device: {name}, torch {torch.__version__}", "",
             "| what | precision | one | batch | peak GPU memory (GiB) |", "|---|---|---|---|---|"]  # fmt: skip
    lines += predict_rows(device, out, args.quick)
    lines += train_rows(device, out, args.quick)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
