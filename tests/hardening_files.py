"""Helpers of the hardening tests (faults, determinism, privacy, security): the CLI in a subprocess or in this
process, manifests, checksums, and a check that a study folder holds a complete, readable prediction."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pydicom
from broken_inputs import run_inprocess
from io_files import sha256

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ECHOKDM_PROGRESS": "0"}


def echokdm(*args, cwd=None, env=None, preexec_fn=None, timeout=300) -> subprocess.CompletedProcess:
    """``python -m echokdm ARGS`` with captured text output (one torch thread, no progress bars)."""
    return subprocess.run([sys.executable, "-m", "echokdm", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env or ENV, preexec_fn=preexec_fn)


def echokdm_inprocess(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``echokdm ARGS`` run in this process through the console entry point (:func:`broken_inputs.run_inprocess`:
    stdout, and on stderr what a user would see: messages, warnings, C-level output), returned as :func:`echokdm`
    returns a child's; no interpreter start-up and imports to pay."""
    argv = [str(a) for a in args]
    status, out, err = run_inprocess(argv, timeout=timeout)
    return subprocess.CompletedProcess(["echokdm", *argv], status, out, err)


@contextmanager
def sealed_env(folder: Path) -> Iterator[dict[str, str]]:
    """The environment of a child command that may write nothing outside its ``--out``: :data:`ENV` with an
    unwritable ``folder/home`` as HOME (root writes anyway: then nothing may appear in it), ``folder/tmp`` as
    TMPDIR and no cache folder set elsewhere. Asserts, once the block is done, that HOME and TMPDIR stayed
    empty (the caller checks ``folder`` itself)."""
    home, tmp = folder / "home", folder / "tmp"
    home.mkdir()
    tmp.mkdir()
    home.chmod(0o555)
    env = {k: v for k, v in ENV.items() if k not in ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME")}
    try:
        yield {**env, "HOME": str(home), "TMPDIR": str(tmp)}
    finally:
        home.chmod(0o755)
    assert list(home.rglob("*")) == [] and list(tmp.rglob("*")) == []


def write_manifest(path: Path, rows: list[tuple], header: tuple[str, ...] = ("study_id", "dicom", "seg")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def checksums(*paths: Path) -> dict[str, str]:
    """sha256 of every file under the given files/folders (to show inputs are never modified)."""
    out = {}
    for root in map(Path, paths):
        for p in sorted([root] if root.is_file() else root.rglob("*")):
            if p.is_file():
                out[str(p)] = sha256(p)
    return out


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command (asserts there is exactly one and no traceback)."""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def assert_complete_study(folder: Path) -> dict:
    """Every file the report lists exists and reads back: DICOM (cine, SEG, SR), PNG/GIF, npy, NIfTI, JSON, CSV.
    Returns the report."""
    report = json.loads((folder / "report.json").read_text())
    files = report["files"]
    listed = [f for k, f in files.items() if k != "frames"] + files["frames"]
    for name in listed:
        p = folder / name
        assert p.is_file(), p
        if p.suffix == ".dcm":
            ds = pydicom.dcmread(p)
            if ds.Modality == "SR":  # no pixels: its measurements read back
                assert ds.ContentSequence
            else:
                assert ds.pixel_array.shape[-2:] == tuple(report["input"]["image_size"])
        elif p.suffix in (".png", ".gif"):
            assert iio.imread(p).size > 0
        elif p.suffix == ".npy":
            assert np.load(p).shape[1] == 2
        elif p.name.endswith(".nii.gz"):
            assert nib.load(p).get_fdata().size > 0
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".csv":
            assert len(read_csv(p)) == 1
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != ".echokdm"}
    assert on_disk == set(listed), on_disk ^ set(listed)
    return report


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes."""
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".part"))
