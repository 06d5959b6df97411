"""Data sources: the sample loop that ships with echokdm's dependencies (no download), readers of the public
data sets (:mod:`echokdm.data.camus`, :mod:`echokdm.data.echonet`), of folders of DICOM cines
(:mod:`echokdm.data.cines`), and their splits (:mod:`echokdm.data.splits`)."""

from __future__ import annotations

from pathlib import Path

from echokdm.errors import InputError

#: sample name -> file in pydicom's bundled test data
SAMPLES = {
    "sonosite": "examples_ybr_color.dcm",  # 30-frame SonoSite cine, JPEG baseline, YBR_FULL_422
}


def sample_path(name: str = "sonosite") -> Path:
    """Path of a bundled sample loop.

    Args:
        name: one of :data:`SAMPLES` ("sonosite": a real 30-frame parasternal cine).

    Returns:
        The local file path (never downloaded).

    Raises:
        InputError: unknown sample name.
    """
    from pydicom.data import get_testdata_file

    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; expected one of {', '.join(sorted(SAMPLES))}")
    path = get_testdata_file(SAMPLES[name], download=False)
    if path is None:
        raise InputError(f"sample {name!r} ({SAMPLES[name]}) is missing from the installed pydicom")
    return Path(path)
