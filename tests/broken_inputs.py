"""A corpus of broken inputs, generated (never committed) from pydicom's shipped test files and phantom loops.

Each :class:`BrokenCase` writes one input into a folder. :data:`CASES` are broken loops: truncated files and
pixel data, corrupt JPEG / JPEG 2000 fragments, missing or contradictory tags, wrong VRs, bad frame time and
spacing, other modalities, a single frame, enormous claimed dimensions, non-DICOM files named ``.dcm``, empty
files, folders, pipes, unreadable files, broken links and link loops, and damaged NIfTI / MetaImage / AVI /
PNG loops. :data:`SEG_CASES` are broken segmentations. :data:`EXPECTED_OK` says which (command, case) pairs
must succeed; every other pair must fail with one line naming the file and the problem (:func:`message`),
exit status 2 (predict-batch: 1, the study in failures.csv), nothing partial left, the input unchanged.

``python tests/broken_inputs.py --report [--weights DIR]`` runs every CLI command that takes an input on every
case (in this process, 120 s limit each) and prints the counts per command: tried, clean errors, successes,
wrong; ``python tests/broken_inputs.py`` lists the cases.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    UltrasoundImageStorage,
)

#: frames and side of the phantom loop the DICOM-tag cases are written from
BASE_FRAMES, BASE_SIZE = 12, 96
#: commands that take an input, as the corpus drives them (``metrics`` twice: the loop and the segmentation)
COMMANDS = ("info", "segment", "metrics-dicom", "metrics-seg", "predict", "predict-batch", "manifest", "evaluate")


# ---- the base inputs ---------------------------------------------------------------------------------------
@dataclass
class Base:
    """Good inputs the cases are derived from.

    Attributes:
        root: folder holding them.
        loop: a phantom loop as an uncompressed US multi-frame DICOM (BASE_FRAMES x BASE_SIZE x BASE_SIZE).
        labels: its CAMUS labels as NIfTI (T, H, W), the ``--seg`` of metrics and predict.
        sonosite: a copy of pydicom's 30-frame SonoSite cine (JPEG baseline, YBR_FULL_422).
        j2k: a copy of pydicom's single-frame ultrasound JPEG 2000 image.
    """

    root: Path
    loop: Path
    labels: Path
    sonosite: Path
    j2k: Path
    meta: dict = field(default_factory=dict)


def pydicom_file(name: str) -> Path:
    """A file shipped with pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is missing")
    return Path(path)


def make_base(root: Path) -> Base:
    """Write the good inputs into ``root`` (a phantom loop + labels, copies of two pydicom files)."""
    from echokdm.data import sample_path
    from echokdm.io import write_cine_dicom, write_label_sequence
    from echokdm.labels import camus_labels
    from echokdm.phantom import sample_params, simulate

    root.mkdir(parents=True, exist_ok=True)
    lp = simulate(sample_params(3, size=BASE_SIZE, frames=BASE_FRAMES, n_beats=1))
    frames = (np.clip(lp.frames, 0, 1) * 255).round().astype(np.uint8)
    labels = camus_labels(lp.labels)
    loop = root / "loop.dcm"
    write_cine_dicom(loop, frames, frame_time_ms=lp.frame_time_ms, spacing_mm=lp.spacing_mm)
    write_label_sequence(root / "labels.nii.gz", labels, lp.spacing_mm)
    sono, j2k = root / "sonosite.dcm", root / "j2k.dcm"
    shutil.copyfile(sample_path("sonosite"), sono)
    shutil.copyfile(pydicom_file("examples_jpeg2k.dcm"), j2k)
    meta = {"ed": [int(e) for e in lp.ed], "es": [int(e) for e in lp.es], "ef": float(lp.ef),
            "spacing_mm": [float(s) for s in lp.spacing_mm], "frame_time_ms": float(lp.frame_time_ms)}
    return Base(root, loop, root / "labels.nii.gz", sono, j2k, meta)


# ---- helpers that write one broken file --------------------------------------------------------------------
def _edit(src: Path, dst: Path, edit: Callable[[Dataset], None]) -> Path:
    """Read ``src``, apply ``edit`` to the dataset and write it to ``dst`` as is (no validation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(src)
        edit(ds)
        ds.save_as(dst, enforce_file_format=False)
    return dst


def _bytes(dst: Path, data: bytes) -> Path:
    dst.write_bytes(data)
    return dst


def _fragments(path: Path) -> list[bytes]:
    """The fragments of encapsulated pixel data (after the basic offset table, the first item)."""
    ds = pydicom.dcmread(path)
    return list(generate_fragments(ds.PixelData))[1:]


def _reencapsulate(src: Path, dst: Path, fragments: list[bytes], **tags) -> Path:
    def edit(ds: Dataset) -> None:
        ds.PixelData = _encapsulate_raw(fragments)
        ds["PixelData"].VR = "OB"
        for k, v in tags.items():
            setattr(ds, k, v)

    return _edit(src, dst, edit)


def _set(**tags) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for k, v in tags.items():
            if v is None:
                delattr(ds, k)
            else:
                setattr(ds, k, v)

    return edit


def _raw(tag: int, vr: str, value) -> Callable[[Dataset], None]:
    """Replace an attribute by one of the wrong VR (written as given, read back with that VR)."""

    def edit(ds: Dataset) -> None:
        ds[tag] = DataElement(tag, vr, value)

    return edit


def _region(**values) -> Callable[[Dataset], None]:
    """Change the calibration of the first ultrasound region (as raw strings, so NaN and negatives get through)."""

    def edit(ds: Dataset) -> None:
        region = ds.SequenceOfUltrasoundRegions[0]
        for k, v in values.items():
            tag = region.data_element(k).tag
            region[tag] = DataElement(tag, "FD", v)

    return edit


def _pixel_offset(path: Path) -> int:
    """Byte offset of the (uncompressed, explicit VR little endian) pixel data's value in ``path``."""
    return path.read_bytes().rindex(b"\xe0\x7f\x10\x00OB\0\0") + 12


def _encapsulate_raw(fragments: list[bytes]) -> bytes:
    """Encapsulated pixel data as written, fragments of any length (empty ones too), empty offset table."""
    items = [b"\xfe\xff\x00\xe0" + struct.pack("<L", len(f)) + f for f in [b"", *fragments]]
    return b"".join(items) + b"\xfe\xff\xdd\xe0\0\0\0\0"


# ---- the cases ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BrokenCase:
    """One broken input.

    Args:
        name: identifier (also the study id in manifests).
        what: one-line description.
        make: writes the input into a folder from the :class:`Base` and returns its path.
        message: words the one-line error of a refusing loader must hold (lower case match); None when the
            loader accepts the input.
    """

    name: str
    what: str
    make: Callable[[Path, Base], Path]
    message: str | None


def _case(name: str, what: str, message: str | None):
    def register(make: Callable[[Path, Base], Path]) -> Callable[[Path, Base], Path]:
        CASES[name] = BrokenCase(name, what, make, message)
        return make

    return register


CASES: dict[str, BrokenCase] = {}


def _tag_case(name: str, what: str, message: str | None, base: str = "loop", **tags) -> None:
    """Register a case that sets (or, with None, deletes) DICOM attributes of a base file (``loop`` or ``sonosite``)."""
    _case(name, what, message)(lambda d, b: _edit(getattr(b, base), d / "study.dcm", _set(**tags)))


# files that are not DICOM, or not files
@_case("empty", "an empty file named .dcm", "empty file")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.dcm", b"")


@_case("text", "a text file named .dcm", "not a dicom file")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.dcm", b"PatientName,EF\nDoe,55\n")


@_case("png_named_dcm", "a PNG image named .dcm", "not a dicom file")
def _(d: Path, b: Base) -> Path:
    import imageio.v3 as iio

    return _bytes(d / "study.dcm", iio.imwrite("<bytes>", np.zeros((8, 8), np.uint8), extension=".png"))


@_case("random_bytes", "4 KiB of random bytes named .dcm", "not a dicom file")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.dcm", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


@_case("preamble_only", "a DICOM preamble and 'DICM' marker, then nothing", "header is incomplete")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.dcm", b"\0" * 128 + b"DICM")


@_case("directory", "a folder named study.dcm", "folder without png/jpeg frames")
def _(d: Path, b: Base) -> Path:
    (d / "study.dcm").mkdir()
    return d / "study.dcm"


@_case("missing", "a path that does not exist", "no such file")
def _(d: Path, b: Base) -> Path:
    return d / "study.dcm"


@_case("dangling_symlink", "a symlink to a file that does not exist", "symbolic link cannot be followed: no such file")
def _(d: Path, b: Base) -> Path:
    (d / "study.dcm").symlink_to(d / "gone.dcm")
    return d / "study.dcm"


@_case("symlink_loop", "two symlinks pointing at each other", "too many levels of symbolic links")
def _(d: Path, b: Base) -> Path:
    (d / "study.dcm").symlink_to(d / "other.dcm")
    (d / "other.dcm").symlink_to(d / "study.dcm")
    return d / "study.dcm"


@_case("fifo", "a named pipe called study.dcm (reading it would wait forever)", "not a regular file")
def _(d: Path, b: Base) -> Path:
    os.mkfifo(d / "study.dcm")
    return d / "study.dcm"


@_case("unreadable", "a good loop with permissions 000 (readable anyway by root)", "permission denied")
def _(d: Path, b: Base) -> Path:
    p = d / "study.dcm"
    shutil.copyfile(b.loop, p)
    p.chmod(0)
    return p


# truncation
@_case("truncated_header", "the loop cut inside its header (300 bytes)", "header is incomplete")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.dcm", b.loop.read_bytes()[:300])


@_case("truncated_pixels", "the loop cut in the middle of its pixel data", "pixel data is truncated")
def _(d: Path, b: Base) -> Path:
    data = b.loop.read_bytes()
    return _bytes(d / "study.dcm", data[: _pixel_offset(b.loop) + (len(data) - _pixel_offset(b.loop)) // 2])


@_case("truncated_last_byte", "the loop without its last byte", "pixel data is truncated")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.dcm", b.loop.read_bytes()[:-1])


@_case("truncated_before_pixels", "the loop cut inside the pixel data's element header", "no pixel data")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.dcm", b.loop.read_bytes()[: _pixel_offset(b.loop) - 6])


@_case("truncated_jpeg", "the SonoSite cine cut in half (inside frame 15's JPEG)", "truncated")
def _(d: Path, b: Base) -> Path:
    data = b.sonosite.read_bytes()
    return _bytes(d / "study.dcm", data[: len(data) // 2])


@_case(
    "truncated_jpeg_tail",
    "the SonoSite cine without its last 100 bytes (frame 30's JPEG cut short)",
    "runs past the end of the file",
)
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.dcm", b.sonosite.read_bytes()[:-100])


# corrupt compressed data
@_case("jpeg_garbage_fragment", "SonoSite with frame 5's JPEG replaced by garbage", "corrupt")
def _(d: Path, b: Base) -> Path:
    frags = _fragments(b.sonosite)
    frags[5] = b"\xff\xd8\xff\xe0" + b"garbage!" * 200
    return _reencapsulate(b.sonosite, d / "study.dcm", frags)


@_case(
    "jpeg_header_zeroed",
    "SonoSite with the JPEG headers (quantisation/Huffman tables) of every frame zeroed",
    "corrupt",
)
def _(d: Path, b: Base) -> Path:
    frags = [f[:2] + b"\0" * 600 + f[602:] for f in _fragments(b.sonosite)]
    return _reencapsulate(b.sonosite, d / "study.dcm", frags)


@_case(
    "jpeg_bitflips", "SonoSite with bytes flipped inside the entropy-coded data of every frame", "corrupt at frame 0"
)
def _(d: Path, b: Base) -> Path:
    rng = np.random.default_rng(1)
    frags = []
    for f in _fragments(b.sonosite):
        a = bytearray(f)
        for i in rng.integers(len(a) // 2, len(a) - 16, 8):  # well after the headers, before the EOI marker
            a[i] ^= 0x5A
        frags.append(bytes(a))
    return _reencapsulate(b.sonosite, d / "study.dcm", frags)


@_case("jpeg_missing_fragments", "SonoSite keeping 10 of its 30 frames' fragments", "holds only 10 fragment")
def _(d: Path, b: Base) -> Path:
    return _reencapsulate(b.sonosite, d / "study.dcm", _fragments(b.sonosite)[:10])


@_case("jpeg_frames_fewer_claimed", "SonoSite claiming 20 frames with its 30 frames' fragments", "holds 30 encoded")
def _(d: Path, b: Base) -> Path:
    return _edit(b.sonosite, d / "study.dcm", _set(NumberOfFrames=20))


@_case("dicomdir", "pydicom's DICOMDIR (the index of a media set)", "dicomdir")
def _(d: Path, b: Base) -> Path:
    return Path(shutil.copyfile(get_testdata_file("DICOMDIR"), d / "DICOMDIR"))


@_case("jpeg_empty_fragment", "SonoSite with frame 3's fragment empty", "corrupt")
def _(d: Path, b: Base) -> Path:
    frags = _fragments(b.sonosite)
    frags[3] = b""
    return _reencapsulate(b.sonosite, d / "study.dcm", frags)


@_case("j2k_garbage", "an ultrasound JPEG 2000 image whose codestream body is garbage", "corrupt")
def _(d: Path, b: Base) -> Path:
    frag = b"".join(_fragments(b.j2k))
    garbage = np.random.default_rng(2).integers(0, 256, len(frag) - 200, dtype=np.uint8).tobytes()
    return _reencapsulate(b.j2k, d / "study.dcm", [frag[:200] + garbage])


@_case("j2k_truncated", "an ultrasound JPEG 2000 image whose codestream is cut to 300 bytes", "corrupt")
def _(d: Path, b: Base) -> Path:
    frag = b"".join(_fragments(b.j2k))
    return _reencapsulate(b.j2k, d / "study.dcm", [frag[:300]])


@_case("rle_syntax_native_data", "the transfer syntax says RLE, the pixel data is uncompressed", "not encapsulated")
def _(d: Path, b: Base) -> Path:
    data = b.loop.read_bytes()  # same UID length: Explicit VR Little Endian -> RLE Lossless, in the file meta only
    old, new = ExplicitVRLittleEndian.encode() + b"\0", RLELossless.encode() + b"\0"
    return _bytes(d / "study.dcm", data.replace(old, new, 1))


@_case(
    "native_syntax_jpeg_data",
    "the transfer syntax says uncompressed, the pixel data is JPEG fragments",
    "pixel data is encapsulated",
)
def _(d: Path, b: Base) -> Path:
    data = b.sonosite.read_bytes()  # JPEG Baseline -> Explicit VR Little Endian in the file meta, padded to length
    return _bytes(
        d / "study.dcm", data.replace(JPEGBaseline8Bit.encode(), ExplicitVRLittleEndian.encode() + b"\0\0\0", 1)
    )


# missing or contradictory tags
_tag_case("no_pixel_data", "the loop without Pixel Data", "no pixel data", PixelData=None)
_tag_case("no_rows", "the loop without Rows", "lacks 'rows'", Rows=None)


@_case("no_transfer_syntax", "the loop without a Transfer Syntax UID", "transfer syntax")
def _(d: Path, b: Base) -> Path:
    def edit(ds: Dataset) -> None:
        del ds.file_meta.TransferSyntaxUID

    return _edit(b.loop, d / "study.dcm", edit)


_tag_case(
    "no_photometric",
    "the loop without Photometric Interpretation",
    "lacks 'photometricinterpretation'",
    PhotometricInterpretation=None,
)
_tag_case(
    "photometric_bogus",
    "Photometric Interpretation 'RAINBOW'",
    "photometric interpretation 'rainbow' is not supported",
    PhotometricInterpretation="RAINBOW",
)
_tag_case("rows_doubled", "Rows twice the data's (pixel data too short)", "pixel data is truncated", Rows=2 * BASE_SIZE)
_tag_case("rows_halved", "Rows half the data's (pixel data twice too long)", "contradict", Rows=BASE_SIZE // 2)
_tag_case("frames_zero", "Number of Frames 0", "number of frames is 0", NumberOfFrames=0)
_tag_case("frames_negative", "Number of Frames -3", "frame count -3", NumberOfFrames=-3)
_tag_case(
    "frames_doubled",
    "Number of Frames twice the frames present",
    "pixel data is truncated",
    NumberOfFrames=2 * BASE_FRAMES,
)
_tag_case("frames_fewer", "Number of Frames 2 while the pixel data holds 12 frames", "contradict", NumberOfFrames=2)
_tag_case(
    "frames_huge_native",
    "Number of Frames 100000 on a 12-frame uncompressed loop",
    "pixel data is truncated",
    NumberOfFrames=100_000,
)
_tag_case(
    "frames_huge_jpeg",
    "Number of Frames 50000 on the 30-frame SonoSite JPEG cine (3.8 GB if allocated)",
    "holds only 30 fragment",
    base="sonosite",
    NumberOfFrames=50_000,
)
_tag_case(
    "enormous_dims",
    "Rows 65535, Columns 65535, Number of Frames 100000",
    "absurd image size",
    Rows=65535,
    Columns=65535,
    NumberOfFrames=100_000,
)
_tag_case(
    "large_dims_jpeg",
    "SonoSite claiming 4096 x 4096 pixels per frame (0.5 GB if allocated)",
    "(4096,4096,3)",
    base="sonosite",
    Rows=4096,
    Columns=4096,
)
_tag_case("bits_allocated_7", "Bits Allocated 7", "bits allocated 7", BitsAllocated=7)
_tag_case("bits_allocated_12", "Bits Allocated 12", "bits allocated 12", BitsAllocated=12)
_tag_case("bits_allocated_0", "Bits Allocated 0", "bits allocated 0", BitsAllocated=0)
_tag_case("bits_stored_0", "Bits Stored 0 (Bits Allocated 8)", "bits stored 0; expected 1..8", BitsStored=0)
_tag_case(
    "bits_stored_16", "Bits Stored 16 with Bits Allocated 8", "bits stored 16; expected 1..8", BitsStored=16, HighBit=15
)
_tag_case("samples_per_pixel_2", "Samples per Pixel 2", "samples per pixel 2", SamplesPerPixel=2)


@_case("planar_configuration_2", "colour SonoSite-like data with Planar Configuration 2", "planar configuration")
def _(d: Path, b: Base) -> Path:
    def edit(ds: Dataset) -> None:
        ds.PlanarConfiguration = 2

    return _edit(pydicom_file("SC_rgb_rle_2frame.dcm"), d / "study.dcm",
                 lambda ds: (edit(ds), _as_us(ds)))


# wrong VRs
@_case("rows_vr_text", "Rows written with VR LO as 'abc'", "malformed")
def _(d: Path, b: Base) -> Path:
    return _edit(b.loop, d / "study.dcm", _raw(0x00280010, "LO", "abc"))


@_case("frames_vr_text", "Number of Frames written as 'twelve'", "malformed")
def _(d: Path, b: Base) -> Path:
    return _edit(b.loop, d / "study.dcm", _raw(0x00280008, "LO", "twelve"))


@_case("frame_time_vr_text", "Frame Time written as 'fast' (falls back to Cine Rate)", None)
def _(d: Path, b: Base) -> Path:
    return _edit(b.loop, d / "study.dcm", _raw(0x00181063, "LO", "fast"))


@_case("spacing_vr_text", "Pixel Spacing written as 'a\\b' and no ultrasound region", None)
def _(d: Path, b: Base) -> Path:
    def edit(ds: Dataset) -> None:
        del ds.SequenceOfUltrasoundRegions
        _raw(0x00280030, "LO", "a\\b")(ds)

    return _edit(b.loop, d / "study.dcm", edit)


# timing and spacing values
def _no_timing(ds: Dataset) -> None:
    del ds.CineRate


def _bad_frame_time(value: str) -> Callable[[Dataset], None]:
    """Delete Cine Rate and store ``value`` as the raw Frame Time."""

    def edit(ds: Dataset) -> None:
        _no_timing(ds)
        _raw(0x00181063, "DS", value)(ds)

    return edit


for _name, _value, _what in [
    ("frame_time_negative", "-33", "Frame Time -33 ms"),
    ("frame_time_nan", "NaN", "Frame Time NaN"),
    ("frame_time_zero", "0", "Frame Time 0"),
    ("frame_time_inf", "1e400", "Frame Time 1e400 (infinite)"),
]:
    _case(_name, f"{_what} and no Cine Rate", None)(
        lambda d, b, value=_value: _edit(b.loop, d / "study.dcm", _bad_frame_time(value))
    )


_case("frame_time_tiny", "Frame Time 1e-9 ms (10^12 frames per second) and no Cine Rate", None)(
    lambda d, b: _edit(b.loop, d / "study.dcm", _bad_frame_time("1e-9"))
)


@_case("frame_time_vector_inf", "Frame Time Vector 0, 1e400, ... (infinite), no Frame Time or Cine Rate", None)
def _(d: Path, b: Base) -> Path:
    def edit(ds: Dataset) -> None:
        _no_timing(ds)
        del ds.FrameTime
        ds["FrameTimeVector"] = DataElement(0x00181065, "DS", ["0"] + ["1e400"] * (BASE_FRAMES - 1))

    return _edit(b.loop, d / "study.dcm", edit)


for _name, _value in [("spacing_inf", float("inf")), ("spacing_huge", 1e300), ("spacing_tiny", 1e-300)]:
    _case(_name, f"ultrasound region with Physical Delta X/Y {_value:g} cm", None)(
        lambda d, b, value=_value: _edit(b.loop, d / "study.dcm", _region(PhysicalDeltaX=value, PhysicalDeltaY=value))
    )


@_case("patient_weight_junk", "Patient Weight 'PHIWEIGHT75kg' (not a decimal string)", None)
def _(d: Path, b: Base) -> Path:
    path = _edit(b.loop, d / "study.dcm", _set(PatientWeight="1.234567890123"))
    return _bytes(path, path.read_bytes().replace(b"1.234567890123", b"PHIWEIGHT75kg "))


@_case("spacing_negative", "ultrasound region with Physical Delta X/Y -0.03 cm", None)
def _(d: Path, b: Base) -> Path:
    return _edit(b.loop, d / "study.dcm", _region(PhysicalDeltaX=-0.03, PhysicalDeltaY=-0.03))


@_case("spacing_nan", "ultrasound region with Physical Delta X/Y NaN", None)
def _(d: Path, b: Base) -> Path:
    return _edit(b.loop, d / "study.dcm", _region(PhysicalDeltaX=float("nan"), PhysicalDeltaY=float("nan")))


@_case("spacing_zero", "ultrasound region with Physical Delta X/Y 0", None)
def _(d: Path, b: Base) -> Path:
    return _edit(b.loop, d / "study.dcm", _region(PhysicalDeltaX=0.0, PhysicalDeltaY=0.0))


@_case("pixel_spacing_negative", "Pixel Spacing -0.3\\-0.3 and no ultrasound region", None)
def _(d: Path, b: Base) -> Path:
    def edit(ds: Dataset) -> None:
        del ds.SequenceOfUltrasoundRegions
        ds.PixelSpacing = ["-0.3", "-0.3"]

    return _edit(b.loop, d / "study.dcm", edit)


# other modalities, other objects, single frames
def _as_us(ds: Dataset) -> None:
    ds.Modality = "US"
    ds.SOPClassUID = UltrasoundImageStorage
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundImageStorage


@_case("ct", "pydicom's CT_small.dcm", "not an ultrasound image (modality ct")
def _(d: Path, b: Base) -> Path:
    return Path(shutil.copyfile(pydicom_file("CT_small.dcm"), d / "study.dcm"))


@_case("mr", "pydicom's MR_small.dcm", "not an ultrasound image (modality mr")
def _(d: Path, b: Base) -> Path:
    return Path(shutil.copyfile(pydicom_file("MR_small.dcm"), d / "study.dcm"))


@_case("structured_report", "pydicom's reportsi.dcm (an SR document, no image)", "not an ultrasound image")
def _(d: Path, b: Base) -> Path:
    return Path(shutil.copyfile(pydicom_file("reportsi.dcm"), d / "study.dcm"))


@_case("us_without_image", "an SR document relabelled as ultrasound (no image attributes)", "lacks 'rows'")
def _(d: Path, b: Base) -> Path:
    return _edit(pydicom_file("reportsi.dcm"), d / "study.dcm", _as_us)


@_case("mr_truncated_as_us", "pydicom's MR_truncated.dcm relabelled as ultrasound", "pixel data is truncated")
def _(d: Path, b: Base) -> Path:
    return _edit(pydicom_file("MR_truncated.dcm"), d / "study.dcm", _as_us)


@_case("no_file_meta", "pydicom's no_meta.dcm (no preamble, no file meta)", "not a dicom file")
def _(d: Path, b: Base) -> Path:
    return Path(shutil.copyfile(pydicom_file("no_meta.dcm"), d / "study.dcm"))


@_case("single_frame", "a one-frame ultrasound image", None)
def _(d: Path, b: Base) -> Path:
    def edit(ds: Dataset) -> None:
        ds.PixelData = ds.PixelData[: BASE_SIZE * BASE_SIZE]
        ds.NumberOfFrames = 1

    return _edit(b.loop, d / "study.dcm", edit)


# other loop formats (NIfTI, MHD, AVI, PNG frames)
def _frames(b: Base) -> np.ndarray:
    from echokdm.io import read_cine

    return read_cine(b.loop, blank_outside_sector=False)[0]


@_case("nifti_truncated", "the loop as NIfTI (.nii.gz), cut in half", "cannot be read")
def _(d: Path, b: Base) -> Path:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(_frames(b)), str(d / "full.nii.gz"))
    data = (d / "full.nii.gz").read_bytes()
    (d / "full.nii.gz").unlink()
    return _bytes(d / "study.nii.gz", data[: len(data) // 2])


@_case("nifti_raw_truncated", "the loop as uncompressed NIfTI (.nii), cut in half", "cannot be read")
def _(d: Path, b: Base) -> Path:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(_frames(b)), str(d / "study.nii"))
    data = (d / "study.nii").read_bytes()
    return _bytes(d / "study.nii", data[: len(data) // 2])


@_case("nifti_enormous", "a NIfTI header claiming 30000 x 30000 x 1000 voxels", "absurd image size")
def _(d: Path, b: Base) -> Path:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 1000))
    header.set_data_dtype(np.uint8)
    return _bytes(d / "study.nii", header.binaryblock + b"\0" * 4 + b"\0" * 1000)


@_case("mhd_truncated", "the loop as MetaImage (.mhd + .raw) with the .raw cut in half", "data not read completely")
def _(d: Path, b: Base) -> Path:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(_frames(b)), str(d / "study.mhd"))
    raw = (d / "study.raw").read_bytes()
    _bytes(d / "study.raw", raw[: len(raw) // 2])
    return d / "study.mhd"


@_case("mhd_missing_raw", "a MetaImage header whose .raw file is missing", "cannot be read")
def _(d: Path, b: Base) -> Path:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(_frames(b)), str(d / "study.mhd"))
    (d / "study.raw").unlink()
    return d / "study.mhd"


def _avi(path: Path, frames: np.ndarray) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, frames.shape[:0:-1], isColor=False)
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@_case("avi_truncated", "the loop as an MJPG AVI, cut in half", "video is truncated or damaged")
def _(d: Path, b: Base) -> Path:
    data = _avi(d / "full.avi", _frames(b)).read_bytes()
    (d / "full.avi").unlink()
    return _bytes(d / "study.avi", data[: len(data) // 2])


@_case("avi_garbage", "random bytes named .avi", "video cannot be opened")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "study.avi", np.random.default_rng(4).integers(0, 256, 8192, dtype=np.uint8).tobytes())


@_case("frames_bad_png", "a folder of PNG frames, one of them a text file", "cannot be read")
def _(d: Path, b: Base) -> Path:
    import imageio.v3 as iio

    (d / "frames").mkdir()
    for i, f in enumerate(_frames(b)[:3]):
        iio.imwrite(d / "frames" / f"frame_{i:02d}.png", f)
    _bytes(d / "frames" / "frame_01.png", b"not a picture\n")
    return d / "frames"


@_case("frames_with_pipe", "a folder of PNG frames, one of them a named pipe", "not a regular file")
def _(d: Path, b: Base) -> Path:
    import imageio.v3 as iio

    (d / "frames").mkdir()
    for i, f in enumerate(_frames(b)[:3]):
        iio.imwrite(d / "frames" / f"frame_{i:02d}.png", f)
    os.mkfifo(d / "frames" / "frame_03.png")
    return d / "frames"


@_case("frames_with_device", "a folder of PNG frames, one of them a link to /dev/zero", "not a regular file")
def _(d: Path, b: Base) -> Path:
    import imageio.v3 as iio

    (d / "frames").mkdir()
    for i, f in enumerate(_frames(b)[:3]):
        iio.imwrite(d / "frames" / f"frame_{i:02d}.png", f)
    os.symlink("/dev/zero", d / "frames" / "frame_03.png")
    return d / "frames"


@_case("mhd_data_pipe", "the loop as MetaImage whose .raw data file is a named pipe", "not a regular file")
def _(d: Path, b: Base) -> Path:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(_frames(b)), str(d / "study.mhd"))
    (d / "study.raw").unlink()
    os.mkfifo(d / "study.raw")
    return d / "study.mhd"


@_case("frames_mixed_sizes", "a folder of PNG frames of two sizes", "differs from the first frame")
def _(d: Path, b: Base) -> Path:
    import imageio.v3 as iio

    (d / "frames").mkdir()
    frames = _frames(b)
    iio.imwrite(d / "frames" / "frame_00.png", frames[0])
    iio.imwrite(d / "frames" / "frame_01.png", frames[1, :48])
    return d / "frames"


@_case("png_bomb", "a folder with a 40000 x 40000 PNG of 1 KiB (a decompression bomb)", "cannot be read")
def _(d: Path, b: Base) -> Path:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">L", len(data)) + kind + data + struct.pack(">L", zlib.crc32(kind + data))

    (d / "frames").mkdir()
    ihdr = struct.pack(">LLBBBBB", 40000, 40000, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 40001 * 8))
        + chunk(b"IEND", b"")
    )
    return _bytes(d / "frames" / "frame_00.png", png).parent


# ---- broken segmentations (the --seg of metrics and predict, the seg column of a batch manifest) -----------
def _nifti(path: Path, labels: np.ndarray) -> Path:
    """(T, H, W) or (H, W) array of any dtype as NIfTI, time slowest (the layout of echokdm's label files)."""
    import nibabel as nib

    data = np.ascontiguousarray(np.asarray(labels).T)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _labels(b: Base) -> np.ndarray:
    from echokdm.io import read_segmentation

    return read_segmentation(b.labels)


SEG_CASES: dict[str, BrokenCase] = {}


def _seg_case(name: str, what: str, message: str):
    def register(make: Callable[[Path, Base], Path]) -> Callable[[Path, Base], Path]:
        SEG_CASES[name] = BrokenCase(name, what, make, message)
        return make

    return register


@_seg_case("seg_empty", "an empty labels.nii.gz", "empty file")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "labels.nii.gz", b"")


@_seg_case("seg_garbage", "random bytes named labels.nii.gz", "cannot be read")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "labels.nii.gz", np.random.default_rng(3).integers(0, 256, 2048, dtype=np.uint8).tobytes())


@_seg_case("seg_truncated", "the labels' NIfTI cut in half", "compressed file ended")
def _(d: Path, b: Base) -> Path:
    data = b.labels.read_bytes()
    return _bytes(d / "labels.nii.gz", data[: len(data) // 2])


@_seg_case("seg_text_png", "a text file named labels.png", "cannot be read")
def _(d: Path, b: Base) -> Path:
    return _bytes(d / "labels.png", b"not a picture\n")


@_seg_case("seg_empty_folder", "an empty folder as the segmentation", "no png label frames")
def _(d: Path, b: Base) -> Path:
    (d / "labels").mkdir()
    return d / "labels"


@_seg_case("seg_fewer_frames", "labels of 6 of the loop's 12 frames", "must match")
def _(d: Path, b: Base) -> Path:
    return _nifti(d / "labels.nii.gz", _labels(b)[:6])


@_seg_case("seg_other_size", "labels at half the loop's size", "must match")
def _(d: Path, b: Base) -> Path:
    return _nifti(d / "labels.nii.gz", _labels(b)[:, ::2, ::2])


@_seg_case("seg_single_frame", "the labels of one frame (H, W)", "single frame")
def _(d: Path, b: Base) -> Path:
    return _nifti(d / "labels.nii.gz", _labels(b)[0])


@_seg_case("seg_all_background", "labels that are 0 everywhere (no LV)", "no lv cavity")
def _(d: Path, b: Base) -> Path:
    return _nifti(d / "labels.nii.gz", np.zeros_like(_labels(b)))


@_seg_case("seg_float", "labels stored as float with fractions (x 0.5)", "non-integer")
def _(d: Path, b: Base) -> Path:
    return _nifti(d / "labels.nii.gz", _labels(b).astype(np.float32) * 0.5)


@_seg_case("seg_nan", "float labels with NaN", "non-finite")
def _(d: Path, b: Base) -> Path:
    lab = _labels(b).astype(np.float32)
    lab[:, 0, 0] = np.nan
    return _nifti(d / "labels.nii.gz", lab)


@_seg_case("seg_out_of_range", "uint16 labels with values up to 1003", "labels range")
def _(d: Path, b: Base) -> Path:
    return _nifti(d / "labels.nii.gz", _labels(b).astype(np.uint16) * 333 + 4)


@_seg_case("seg_is_the_loop", "the ultrasound loop itself given as the segmentation", "not a segmentation")
def _(d: Path, b: Base) -> Path:
    return Path(shutil.copyfile(b.loop, d / "loop.dcm"))


# ---- what each command should do with each case ------------------------------------------------------------
#: commands run on every loop case: the case is the cine (``metrics-seg``: the case is given as the
#: segmentation; ``manifest``: the case is given as the predict-batch manifest)
LOOP_COMMANDS = ("info", "segment", "metrics", "metrics-seg", "predict", "predict-batch", "manifest", "evaluate")
#: commands run on every segmentation case, with the good loop
SEG_COMMANDS = ("metrics", "predict", "predict-batch")
_ODD_LOOPS = ("frame_time_vr_text", "spacing_vr_text", "frame_time_negative", "frame_time_nan", "frame_time_zero",
              "frame_time_inf", "spacing_negative", "spacing_nan", "spacing_zero", "pixel_spacing_negative",
              "frame_time_tiny", "frame_time_vector_inf", "spacing_inf", "spacing_huge", "spacing_tiny",
              "patient_weight_junk")
#: (command -> cases it accepts); every other (command, case) must fail with one clear line. Loops with bad
#: timing or spacing are accepted with that value unknown; a single frame is described by info but is no loop.
#: ``unreadable`` joins the loops accepted everywhere when chmod 000 does not stop this process (root).
EXPECTED_OK: dict[str, frozenset[str]] = {
    "info": frozenset({*_ODD_LOOPS, "single_frame"}),
    "segment": frozenset(_ODD_LOOPS),
    "metrics": frozenset(_ODD_LOOPS),
    "metrics-seg": frozenset(),
    "predict": frozenset(_ODD_LOOPS),
    "predict-batch": frozenset(_ODD_LOOPS),
    "manifest": frozenset(),
    "evaluate": frozenset(_ODD_LOOPS),
}
#: words of the error line for expected errors that are not the loader's (lower case)
COMMAND_MESSAGES = {
    ("metrics", "single_frame"): "must match",
    ("segment", "single_frame"): "has 1 frame(s)",
    ("predict", "single_frame"): "has 1 frame(s)",
    ("predict-batch", "single_frame"): "has 1 frame(s)",
    ("evaluate", "single_frame"): "outside the loop of 1 frames",
    **{(c, k): "must label every frame" for c in ("predict", "predict-batch")
       for k in ("seg_fewer_frames", "seg_other_size", "seg_single_frame")},
    **{(c, "seg_all_background"): "no detectable heart beat" for c in ("predict", "predict-batch")},
}


#: errors that rightly name something else than the broken input (the loop whose beat the labels lack; the
#: evaluation case by its id)
NAMES_NO_FILE = {
    ("predict", "seg_all_background"),
    ("predict-batch", "seg_all_background"),
    ("evaluate", "single_frame"),
}


def unreadable_is_readable() -> bool:
    """Whether chmod 000 still lets this process read a file (root, or a file system without permissions)."""
    with tempfile.NamedTemporaryFile() as f:
        os.chmod(f.name, 0)
        return os.access(f.name, os.R_OK)


def all_runs() -> list[tuple[str, str]]:
    """Every (command, case) pair the corpus drives."""
    return [(c, k) for c in LOOP_COMMANDS for k in CASES] + [(c, k) for c in SEG_COMMANDS for k in SEG_CASES]


def expected(command: str, case: str) -> str:
    """``"ok"`` when ``command`` should succeed on ``case``, else ``"error"`` (exit 2 and one line
    ``echokdm: error: ...``; for predict-batch exit 1, one line ``failed STUDY: ...`` and the study in
    failures.csv)."""
    if case in SEG_CASES:
        return "error"
    if case == "unreadable" and unreadable_is_readable():  # a good loop then
        return "error" if command in ("metrics-seg", "manifest") else "ok"
    return "ok" if case in EXPECTED_OK[command] else "error"


def message(command: str, case: str) -> str:
    """Words the error line must hold (lower case) for an expected error."""
    if command == "manifest":
        return "manifest"
    if command == "metrics-seg":
        return "/input/"  # each case is built in a folder called input: the line names the file
    if (command, case) in COMMAND_MESSAGES:
        return COMMAND_MESSAGES[command, case]
    c = SEG_CASES.get(case) or CASES[case]
    if case == "unreadable" and unreadable_is_readable():
        raise KeyError((command, case))
    return c.message

# ---- building inputs for each command ----------------------------------------------------------------------
def build_case(case: str, folder: Path, base: Base) -> Path:
    """Write ``case`` into ``folder`` and return the input path."""
    folder.mkdir(parents=True, exist_ok=True)
    return (SEG_CASES.get(case) or CASES[case]).make(folder, base)


def evaluate_folder(case_input: Path, folder: Path, base: Base) -> Path:
    """An ``echokdm phantom`` DICOM-layout data folder whose only case is ``case_input`` (labels of the base)."""
    folder.mkdir(parents=True, exist_ok=True)
    side = {"files": {"dicom": str(case_input), "label": str(base.labels)}, **base.meta}
    (folder / "case.json").write_text(json.dumps(side))
    with open(folder / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "path", "layout"])
        w.writerow(["case", str(case_input), "dicom"])
    return folder


def batch_manifest(study: str, dicom: Path, seg: Path, path: Path) -> Path:
    """A manifest of one study."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study_id", "dicom", "seg"])
        w.writerow([study, str(dicom), str(seg)])
    return path


def argv(command: str, case: str, case_input: Path, work: Path, base: Base, weights: Path | None) -> list[str]:
    """The ``echokdm`` arguments that run ``command`` on the case, writing to ``work/out``."""
    out = str(work / "out")
    loop, seg = (base.loop, case_input) if case in SEG_CASES else (case_input, base.labels)
    kdm = ["--steps", "1", *(["--weights", str(weights)] if weights else [])]
    if command == "info":
        return ["info", str(loop)]
    if command == "segment":
        return [
            "segment",
            "--dicom",
            str(loop),
            "--out",
            out,
            *(["--weights", str(weights / "seg_a4c.safetensors")] if weights else []),
        ]
    if command == "metrics":
        return ["metrics", "--seg", str(seg), "--dicom", str(loop), "--out", out]
    if command == "metrics-seg":
        return ["metrics", "--seg", str(case_input), "--out", out]
    if command == "predict":
        return ["predict", "--dicom", str(loop), "--seg", str(seg), *kdm, "--out", out]
    if command == "predict-batch":
        return [
            "predict-batch",
            "--manifest",
            str(batch_manifest(case, loop, seg, work / "manifest.csv")),
            *kdm,
            "--out",
            out,
        ]
    if command == "manifest":
        return ["predict-batch", "--manifest", str(case_input), *kdm, "--out", out]
    if command == "evaluate":
        data = evaluate_folder(case_input, work / "data", base)
        return [
            "evaluate",
            "--data",
            str(data),
            "--predictors",
            "copy",
            "--segmenter",
            "atlas",
            "--size",
            "32",
            "--report",
            out,
        ]
    raise KeyError(command)


# ---- running a command and judging the result --------------------------------------------------------------
@dataclass
class Outcome:
    """What a command did: exit status, output, time, and what it left in its output folder."""

    status: int
    stdout: str
    stderr: str
    seconds: float
    out: Path
    left: list[str]


class Hang(BaseException):
    """A command ran past its time limit (a BaseException, so the CLI's error handling cannot swallow it)."""


def run_inprocess(args: list[str], timeout: float = 120) -> tuple[int, str, str]:
    """Run ``echokdm ARGS`` in this process as the console entry point does, stopped by SIGALRM after
    ``timeout`` s (raises :class:`Hang`). Warnings are shown on stderr as Python shows them by default, so the
    one-line check sees what a user would see."""
    import signal

    from echokdm.cli import main

    def alarm(signum, frame):
        raise Hang(f"echokdm {' '.join(args)} ran longer than {timeout} s")

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    with tempfile.TemporaryFile() as native:  # what C libraries write to the process's stderr (fd 2)
        saved = os.dup(2)
        os.dup2(native.fileno(), 2)
        try:
            with (
                warnings.catch_warnings(record=True) as caught,
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
            ):
                warnings.simplefilter("default")
                status = main(list(args))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            os.dup2(saved, 2)
            os.close(saved)
        native.seek(0)
        c_level = native.read().decode(errors="replace")
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return status, out.getvalue(), c_level + shown + err.getvalue()


def run_subprocess(args: list[str], timeout: float = 300, **kw) -> tuple[int, str, str]:
    """Run ``python -m echokdm ARGS`` in a child process (raises TimeoutExpired past ``timeout``)."""
    env = {**os.environ, "ECHOKDM_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "echokdm", *args], capture_output=True, text=True, timeout=timeout, env=env, **kw
    )
    return r.returncode, r.stdout, r.stderr


def run(args: list[str], out: Path, in_subprocess: bool = False) -> Outcome:
    """Run a command (in this process unless ``in_subprocess``) and list what it left in ``out``."""
    t0 = time.perf_counter()
    status, stdout, stderr = (run_subprocess if in_subprocess else run_inprocess)(args)
    seconds = time.perf_counter() - t0
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.is_dir() else []
    return Outcome(status, stdout, stderr, seconds, out, left)


def digest(path: Path) -> str | None:
    """sha256 and mode of a file, a marker for other paths (to show inputs are never modified)."""
    if path.is_symlink() and not path.exists():
        return f"link->{os.readlink(path)}"
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
    if not path.exists():
        return None
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        return f"{mode:o}:not a regular file"
    try:
        return f"{mode:o}:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except PermissionError:
        return f"{mode:o}:unreadable"


#: what predict-batch leaves for a failed study: its bookkeeping (echokdm/predict_batch.py), no study folder
BATCH_FAILURE_LEFT = {".echokdm", "summary.csv", "failures.csv", ".failed"}
#: what evaluate leaves when no case could be scored: the resumable record of the run (settings, per-case errors)
EVALUATE_FAILURE_LEFT = {".echokdm", "run.json", "scores.csv"}


def judge(command: str, case: str, o: Outcome) -> list[str]:
    """Problems with an outcome against :func:`expected` and :func:`message` (empty when it is right)."""
    problems = []
    lines = o.stderr.strip().splitlines()
    if "Traceback" in o.stderr:
        problems.append("traceback on stderr")
    if expected(command, case) == "ok":
        if o.status != 0:
            problems.append(f"exit {o.status}, expected success: {o.stderr.strip()[:300]}")
        elif command not in ("info",) and not o.left:
            problems.append("succeeded without writing anything")
        elif lines:
            problems.append(f"success with output on stderr: {lines[:3]}")
        return problems
    if command == "predict-batch":
        if o.status != 1:
            problems.append(f"exit {o.status}, expected 1 (a failed study): {o.stderr.strip()[:300]}")
        extra = set(o.left) - BATCH_FAILURE_LEFT - {f".failed/{case}.txt"}
        if extra:
            problems.append(f"left besides the failure record: {sorted(extra)}")
        if len(lines) != 1 or not lines[0].startswith(f"failed {case}: "):
            problems.append(f"expected one line 'failed {case}: ...' on stderr, got {lines[:4]}")
        if (o.out / "failures.csv").is_file():
            listed = [r["study_id"] for r in csv.DictReader(io.StringIO((o.out / "failures.csv").read_text()))]
            if listed != [case]:
                problems.append(f"failures.csv lists {listed}, expected [{case!r}]")
        else:
            problems.append("no failures.csv")
    else:
        if o.status != 2:
            problems.append(f"exit {o.status}, expected 2: {o.stderr.strip()[:300]}")
        if len(lines) != 1 or not lines[0].startswith("echokdm: error: "):
            problems.append(f"expected one line 'echokdm: error: ...' on stderr, got {lines[:4]}")
        allowed = EVALUATE_FAILURE_LEFT if command == "evaluate" else set()
        if set(o.left) - allowed:
            problems.append(f"left in the output folder: {o.left}")
        if command == "evaluate" and "scores.csv" in o.left:
            errors = [r.get("error", "") for r in csv.DictReader(io.StringIO((o.out / "scores.csv").read_text()))]
            if not errors or not all(errors):
                problems.append(f"scores.csv of a failed evaluation lacks the case's error: {errors}")
    words = message(command, case)
    if lines and words not in lines[-1].lower():
        problems.append(f"error line lacks {words!r}: {lines[-1]}")
    if lines and "/input/" not in lines[-1] and (command, case) not in NAMES_NO_FILE:
        problems.append(f"error line does not name the input file: {lines[-1]}")
    return problems


def try_case(
    command: str, case: str, root: Path, base: Base, weights: Path | None, in_subprocess: bool = False
) -> tuple[Outcome, list[str]]:
    """Build ``case`` in a fresh work folder, run ``command`` on it, judge, and check the input is unchanged."""
    work = root / f"{command}__{case}"
    work.mkdir(parents=True)
    case_input = build_case(case, work / "input", base)
    before = digest(case_input), digest(base.loop), digest(base.labels)
    o = run(argv(command, case, case_input, work, base, weights), work / "out", in_subprocess)
    problems = judge(command, case, o)
    if (digest(case_input), digest(base.loop), digest(base.labels)) != before:
        problems.append("an input was modified")
    return o, problems


# ---- the report --------------------------------------------------------------------------------------------
def report(root: Path, weights: Path | None, commands: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Run every command on every case; print one line per wrong outcome; return the counts per command."""
    base = make_base(root / "base")
    counts: dict[str, dict[str, float]] = {}
    for command, case in all_runs():
        if command not in commands:
            continue
        c = counts.setdefault(command, {"tried": 0, "clean errors": 0, "successes": 0, "wrong": 0, "max s": 0.0})
        try:
            o, problems = try_case(command, case, root / "runs", base, weights)
        except Hang as e:
            o, problems = None, [str(e)]
        c["tried"] += 1
        c["max s"] = max(c["max s"], o.seconds if o else float("inf"))
        if problems:
            c["wrong"] += 1
            print(f"WRONG {command} {case}: {'; '.join(problems)}", flush=True)
        else:
            c["successes" if expected(command, case) == "ok" else "clean errors"] += 1
    return counts


def _restore_permissions(root: Path) -> None:
    for p in root.rglob("*"):  # so that the temporary folder can be removed
        if not p.is_symlink() and p.exists() and stat.S_ISREG(p.stat().st_mode):
            p.chmod(0o644)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Broken inputs for echokdm: list them, or run every command on them.")
    ap.add_argument("--report", action="store_true", help="run every command on every case and print the counts")
    ap.add_argument("--weights", type=Path, default=None, help="weights folder for segment/predict (default: shipped)")
    ap.add_argument(
        "--commands", default=",".join(LOOP_COMMANDS), help="comma-separated subset of " + ", ".join(LOOP_COMMANDS)
    )
    a = ap.parse_args()
    if not a.report:
        for c in [*CASES.values(), *SEG_CASES.values()]:
            print(f"{c.name:26s} {c.what}")
        return
    os.environ.setdefault("ECHOKDM_PROGRESS", "0")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            counts = report(Path(tmp), a.weights, tuple(a.commands.split(",")))
        finally:
            _restore_permissions(Path(tmp))
    print(f"\n{len(CASES)} broken loops, {len(SEG_CASES)} broken segmentations; weights: {a.weights or 'shipped'}; "
          f"chmod 000 readable by this process: {unreadable_is_readable()}; {time.perf_counter() - t0:.0f} s")
    print(f"{'command':15s} {'tried':>6s} {'clean errors':>13s} {'successes':>10s} {'wrong':>6s} {'max s':>6s}")
    for command, c in counts.items():
        print(
            f"{command:15s} {c['tried']:6d} {c['clean errors']:13d} {c['successes']:10d} "
            f"{c['wrong']:6d} {c['max s']:6.1f}"
        )
    total = {k: sum(c[k] for c in counts.values()) for k in ("tried", "clean errors", "successes", "wrong")}
    print(f"{'all':15s} {total['tried']:6d} {total['clean errors']:13d} {total['successes']:10d} {total['wrong']:6d}")


if __name__ == "__main__":
    main()
