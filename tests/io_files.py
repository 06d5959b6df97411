"""Files for the io tests: real pydicom test files and ultrasound DICOMs the tests write themselves."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UltrasoundImageStorage

from echokdm.io import write_cine_dicom


def pydicom_file(name: str) -> Path:
    """A file bundled with pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom test file {name} is missing"
    return Path(path)


def moving_fan(t: int = 12, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """(T, H, W) uint8: speckle in a fan that changes every frame, plus static text-like blocks outside it.

    The fan's apex is at row 4, it reaches row h-5, its half-angle is 0.6 rad.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    radius = np.hypot(xx - w / 2, yy - 4)
    fan = (np.abs(np.arctan2(xx - w / 2, yy - 4 + 1e-9)) < 0.6) & (radius <= h - 9) & (yy >= 4)
    frames = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        frames[i][fan] = rng.integers(20, 230, size=int(fan.sum()))
    frames[:, 2:10, 2:30] = 255  # static "text" top-left
    frames[:, h - 4 : h - 1, w - 40 : w - 2] = 200  # static "UI bar" bottom-right
    return frames


def fan_mask(h: int = 96, w: int = 128) -> np.ndarray:
    """The fan of :func:`moving_fan` as (H, W) bool."""
    yy, xx = np.mgrid[0:h, 0:w]
    radius = np.hypot(xx - w / 2, yy - 4)
    return (np.abs(np.arctan2(xx - w / 2, yy - 4 + 1e-9)) < 0.6) & (radius <= h - 9) & (yy >= 4)


def write_us(path: Path, frames: np.ndarray | None = None, edit: Callable[[Dataset], None] | None = None, **kw) -> Path:
    """Write a US multi-frame file with :func:`write_cine_dicom`, then apply ``edit`` to its dataset."""
    frames = moving_fan() if frames is None else frames
    kw.setdefault("frame_time_ms", 40.0)
    write_cine_dicom(path, frames, **kw)
    if edit is not None:
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)
    return path


def relabel_as_us(name: str, out: Path) -> Path:
    """Copy a pydicom test file (any modality) and mark it as an ultrasound image, pixel data untouched."""
    ds = pydicom.dcmread(pydicom_file(name))
    ds.Modality = "US"
    ds.SOPClassUID = UltrasoundImageStorage
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    ds.save_as(out)
    return out


def copy_testdata(name: str, out: Path) -> Path:
    """Copy a pydicom test file to ``out``."""
    shutil.copyfile(pydicom_file(name), out)
    return out


def sha256(path: Path) -> str:
    """Checksum of a file (to show it was not modified)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def region(box: tuple[int, int, int, int], delta_cm: tuple[float, float], data_type: int = 1) -> Dataset:
    """An ultrasound region item: 2D, cm units, box (x0, y0, x1, y1), deltas (dy, dx) in cm."""
    item = Dataset()
    item.RegionSpatialFormat = 1
    item.RegionDataType = data_type
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1, item.RegionLocationMaxY1 = box
    item.PhysicalUnitsXDirection = 3
    item.PhysicalUnitsYDirection = 3
    item.PhysicalDeltaY, item.PhysicalDeltaX = delta_cm
    return item


def dciodvfy_errors(path) -> list[str] | None:
    """Error lines of dicom3tools' validator, or None when it is not installed (CI must have it)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        assert not os.environ.get("CI"), "dciodvfy missing in CI: install dicom3tools"
        warnings.warn("dciodvfy (dicom3tools) not installed: DICOM validation not run", stacklevel=2)
        return None
    out = subprocess.run([exe, str(path)], capture_output=True, text=True)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def dsrdump(path) -> str | None:
    """dcmtk's rendering of an SR, or None when dcmtk is not installed (CI must have it)."""
    exe = shutil.which("dsrdump")
    if exe is None:
        assert not os.environ.get("CI"), "dsrdump missing in CI: install dcmtk"
        warnings.warn("dsrdump (dcmtk) not installed: SR not rendered", stacklevel=2)
        return None
    out = subprocess.run([exe, str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "E:" not in out.stderr, out.stderr
    return out.stdout
