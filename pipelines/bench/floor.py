"""The reference compute floor (``/work/shared/bench/unet_floor.py``) timed in the benchmark's own run.

Issue 22 states its goals on a machine whose floor (10 steps at 112x112, 2 threads) took
:data:`ISSUE_FLOOR_S`; an absolute goal there becomes a number of floors here (``goal_s / ISSUE_FLOOR_S``).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

FLOOR = Path("/work/shared/bench/unet_floor.py")
ISSUE_FLOOR_S = 0.478  # issue 22, 2026-12-02: the floor on the machine where its absolute goals were set


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fresh(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``cmd`` and its children in a fresh process."""
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=check, capture_output=True, env=env)
    return time.perf_counter() - t0, children_cpu() - c0


def floor_seconds(steps: int = 10, threads: int = 2, device: str = "cpu") -> tuple[float, float, str]:
    """(median seconds of the floor's sampling run, CPU seconds of the floor process per sampling run, its line)."""
    cmd = [sys.executable, str(FLOOR), "--res", "112", "--steps", str(steps), "--threads", str(threads),
           "--device", device]
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}  # as the echokdm command: no spinning threads
    c0 = children_cpu()
    line = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip()
    cpu = children_cpu() - c0
    # the floor process runs 1 warm-up call and 3 sampling runs after its imports; its CPU seconds per run are
    # (process CPU - imports) / 3, the imports timed apart
    imports = fresh([sys.executable, "-c", "import torch, diffusers; from diffusers import UNet2DModel"])[1]
    return float(line.rsplit("seconds=", 1)[1]), max(cpu - imports, 0.0) / 3, line
