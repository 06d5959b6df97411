#!/usr/bin/env python3
"""Load: 200 phantom DICOM studies loaded, ``echokdm predict-batch`` on 20 of them; throughput, peak RSS, no leak.

1. Writes ``--studies`` phantom loops (test-split seeds, ``--size`` pixels, ``--frames`` frames, one beat) as
   DICOM cines and a manifest into a temporary folder (or ``--data``; existing files are reused).
2. Loads every study with ``echokdm.io.load_cine`` in this process (each loop dropped before the next):
   studies/s and this process's RSS after each load.
3. Runs ``echokdm predict-batch`` (a fresh process: shipped weights, built-in segmenter, ``--steps``) on the
   first ``--predict`` studies and samples the child's memory every 20 ms: studies/s, peak RSS (VmHWM), and the
   RSS right after each study is finished (its report.json appears). With ``--repeat R`` the manifest lists
   those studies R times (new study ids): growth that stops in the later passes comes from caches that fill
   once per new image shape, not from a leak, which keeps growing.

Memory is flat when RSS does not grow with the number of studies: printed as the least-squares slope of RSS
over studies 5..N (MiB per study), the ratio RSS(last) / RSS(study 5), and the slope over the second half
(after the allocator and the models' caches have warmed up, a leak still shows there).

    nice python pipelines/bench/load_batch.py [--studies 200] [--predict 20] [--repeat 1] [--steps 2] [--size 128]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MIB = 2**20


def status_kib(pid: int | str, field: str) -> int:
    """A memory field (VmRSS, VmHWM) of /proc/PID/status in KiB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def write_studies(folder: Path, n: int, size: int, frames: int) -> Path:
    """``n`` phantom studies ``study_XXX.dcm`` and ``manifest.csv`` in ``folder``; returns the manifest."""
    from echokdm.io import write_cine_dicom
    from echokdm.phantom import sample_params, simulate, split_seeds

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for i, seed in enumerate(split_seeds("test", n)):
        path = folder / f"study_{i:03d}.dcm"
        if not path.is_file():
            lp = simulate(sample_params(seed, size=size, frames=frames, n_beats=1))
            write_cine_dicom(path, (lp.frames * 255).round().astype(np.uint8), frame_time_ms=lp.frame_time_ms,
                             spacing_mm=lp.spacing_mm)
        rows.append((f"study_{i:03d}", path.name))
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([("study_id", "dicom"), *rows])
    print(f"wrote {n} studies ({size}x{size}, {frames} frames) in {time.perf_counter() - t0:.1f} s -> {folder}")
    return manifest


def flatness(rss_mib: list[float], start: int = 5) -> tuple[float, float]:
    """(slope in MiB per study over studies ``start``..N, ratio RSS(last) / RSS(study ``start``)); 1-based."""
    y = np.asarray(rss_mib[start - 1 :], dtype=np.float64)
    x = np.arange(start, start + len(y), dtype=np.float64)
    return float(np.polyfit(x, y, 1)[0]), float(y[-1] / y[0])


def bench_load(manifest: Path) -> None:
    from echokdm.io import load_cine

    paths = sorted(manifest.parent.glob("study_*.dcm"))
    rss = []
    t0 = time.perf_counter()
    for p in paths:
        loop = load_cine(p)
        assert loop.shape[1] > 1
        del loop
        rss.append(status_kib("self", "VmRSS") / 1024)
    dt = time.perf_counter() - t0
    slope, ratio = flatness(rss)
    print(
        f"load_cine: {len(paths)} studies in {dt:.2f} s = {len(paths) / dt:.1f} studies/s; "
        f"RSS first {rss[0]:.0f} MiB, last {rss[-1]:.0f} MiB, "
        f"peak of this process {status_kib('self', 'VmHWM') / 1024:.0f} MiB"
    )
    print(
        f"load_cine RSS slope over studies 5..{len(rss)}: {slope * 1024:+.1f} KiB/study; last/study-5 ratio {ratio:.3f}"
    )


def bench_predict(manifest: Path, n: int, repeat: int, steps: int, out: Path) -> None:
    rows = manifest.read_text().splitlines()[1 : n + 1]
    listed = (
        [f"{r.split(',')[0]}_{k}," + r.split(",", 1)[1] for k in range(1, repeat + 1) for r in rows]
        if repeat > 1
        else rows
    )
    sub = manifest.parent / f"manifest_first{n}x{repeat}.csv"
    sub.write_text("\n".join(["study_id,dicom", *listed]) + "\n")
    ids = [r.split(",")[0] for r in listed]
    cmd = [
        sys.executable,
        "-m",
        "echokdm",
        "predict-batch",
        "--manifest",
        str(sub),
        "--out",
        str(out),
        "--steps",
        str(steps),
    ]
    env = {**os.environ, "ECHOKDM_PROGRESS": "0"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen: dict[str, tuple[float, float]] = {}  # study -> (seconds since start, RSS MiB) when it finished
    peak = 0
    while proc.poll() is None:
        peak = max(peak, status_kib(proc.pid, "VmHWM"))
        for sid in ids:
            if sid not in seen and (out / sid / "report.json").is_file():
                seen[sid] = (time.perf_counter() - t0, status_kib(proc.pid, "VmRSS") / 1024)
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    print(f"predict-batch ({' '.join(cmd[3:])}): exit {proc.returncode}; {stdout.strip()}")
    if stderr.strip():
        print("  stderr: " + " | ".join(stderr.strip().splitlines()[-5:]))
    done = sorted(seen.values())
    if len(done) < 2:
        print(f"only {len(done)} studies finished; no throughput")
        return
    times, rss = zip(*done)
    print(
        f"predict-batch: {len(done)} studies in {wall:.1f} s wall = {len(done) / wall:.3f} studies/s "
        f"(first study finished at {times[0]:.1f} s, models loaded once; "
        f"after it {(len(done) - 1) / (times[-1] - times[0]):.3f} studies/s)"
    )
    print(f"predict-batch peak RSS (VmHWM) {peak / 1024:.0f} MiB")
    print("RSS after each study (MiB): " + " ".join(f"{r:.0f}" for r in rss))
    if len(rss) >= 7:
        slope, ratio = flatness(list(rss))
        half = len(rss) // 2 + 1
        late, _ = flatness(list(rss), half)
        print(f"RSS slope over studies 5..{len(rss)}: {slope:+.2f} MiB/study; last/study-5 ratio {ratio:.3f}; "
              f"slope over studies {half}..{len(rss)}: {late:+.2f} MiB/study")
    if repeat > 1:
        per = len(rss) // repeat
        print("RSS by pass over the same studies (first, last, slope MiB/study): " + "; ".join(
            f"pass {k + 1}: {rss[k * per]:.0f}, {rss[(k + 1) * per - 1]:.0f}, "
            f"{np.polyfit(np.arange(per), rss[k * per:(k + 1) * per], 1)[0]:+.2f}" for k in range(repeat)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--predict", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1, help="passes over the --predict studies in one batch")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--data", type=Path, default=None, help="folder for the studies (kept); default: a temporary one")
    args = ap.parse_args()
    import torch

    print(f"torch threads {torch.get_num_threads()}, CPUs {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "studies"
        manifest = write_studies(data, args.studies, args.size, args.frames)
        bench_load(manifest)
        bench_predict(manifest, args.predict, args.repeat, args.steps, Path(tmp) / "batch")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
