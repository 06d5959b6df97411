#!/usr/bin/env python3
"""CPU time of the test suite per test file: on a shared machine the honest figure (wall time there depends on
what else runs).

    python pipelines/bench/suite_cpu.py [--top 30] [--tests 0] [PYTEST ARGS ...]

Runs ``python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder`` (``make test``;
PYTEST ARGS replace the ``-n 2 --dist ...`` part and may name test files) with this module as a plugin, which
records for every test the CPU seconds of its process and of the child processes it waited for (fixture set-up
and tear-down included) and its wall seconds. Printed: the ``--top`` files by CPU seconds (self, children, both,
wall summed over the file's tests), the ``--tests`` costliest tests, and the whole run: wall seconds, and user +
system seconds of every process it waited for (what ``/usr/bin/time`` reports; processes that outlive their parent,
such as the orphaned torchrun ranks of ``tests/cli/test_faults.py``, are not counted anywhere).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_DIR_ENV = "SUITE_CPU_DIR"
_rows: list[list[str]] = []


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Plugin side: CPU and wall seconds of one test, appended to this process's TSV in $SUITE_CPU_DIR."""
    own, children, wall = *_cpu(), time.perf_counter()
    yield
    own2, children2 = _cpu()
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(Path(os.environ[_DIR_ENV]) / f"{name}.tsv", "a", newline="") as f:
        row = [item.nodeid, own2 - own, children2 - children, time.perf_counter() - wall]
        csv.writer(f, delimiter="\t").writerow([row[0], *(f"{v:.2f}" for v in row[1:])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=30, help="files to list")
    parser.add_argument("--tests", type=int, default=0, help="costliest tests to list")
    args, pytest_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, _DIR_ENV: tmp,
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", Path(__file__).stem,
               *(pytest_args or ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"])]
        t0 = time.perf_counter()
        status = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        wall = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        tests = [(r[0], *map(float, r[1:])) for p in Path(tmp).glob("*.tsv")
                 for r in csv.reader(p.open(newline=""), delimiter="\t")]
    files: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for nodeid, own, children, seconds in tests:
        f = files[nodeid.split("::")[0]]
        f[0] += 1
        f[1] += own
        f[2] += children
        f[3] += seconds
    print(f"\n{'file':52s} {'tests':>5s} {'self s':>7s} {'child s':>7s} {'cpu s':>7s} {'wall s':>7s}")
    for name, (n, own, children, seconds) in sorted(files.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))[: args.top]:
        print(f"{name:52s} {n:5d} {own:7.1f} {children:7.1f} {own + children:7.1f} {seconds:7.1f}")
    n, own, children, seconds = (sum(f[i] for f in files.values()) for i in range(4))
    print(f"{'all tests':52s} {n:5.0f} {own:7.1f} {children:7.1f} {own + children:7.1f} {seconds:7.1f}")
    for nodeid, own, children, seconds in sorted(tests, key=lambda t: -(t[1] + t[2]))[: args.tests]:
        print(f"{own + children:7.1f} cpu s {seconds:7.1f} wall s  {nodeid}")
    print(f"run: exit {status}, {wall:.1f} s wall, {usage.ru_utime + usage.ru_stime:.1f} s CPU "
          f"(user {usage.ru_utime:.1f} + system {usage.ru_stime:.1f})")
    sys.exit(status)


if __name__ == "__main__":
    main()
