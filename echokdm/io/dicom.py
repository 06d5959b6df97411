"""Read ultrasound cine loops from DICOM files, one frame at a time, as 8-bit grey frames.

Pixel data is decoded by pydicom's plugins (pylibjpeg, pyjpegls, Pillow): uncompressed (little and big
endian, deflated), JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 and RLE. Colour is converted to
grey exactly once: pydicom yields YBR_FULL/YBR_FULL_422 (and JPEG 2000's YBR_ICT/RCT) as RGB, which is
reduced to luma Y = 0.299 R + 0.587 G + 0.114 B, the Y of YBR_FULL; PALETTE COLOR goes through its
lookup table first; MONOCHROME1 is inverted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, get_decoder, iter_pixels
from pydicom.pixels.utils import get_expected_length

from echokdm.errors import InputError, UnsupportedError
from echokdm.io.calibration import UltrasoundRegion, ultrasound_regions

#: SOP classes accepted as ultrasound besides Modality "US" (US image, US multi-frame, retired, enhanced)
US_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1",
    "1.2.840.10008.5.1.4.1.1.3.1",
    "1.2.840.10008.5.1.4.1.1.6",
    "1.2.840.10008.5.1.4.1.1.3",
    "1.2.840.10008.5.1.4.1.1.6.2",
}
#: limits beyond which dimensions are taken as corrupt rather than as a real loop
MAX_SIDE = 8192
MAX_FRAMES = 100_000
MAX_PIXELS = 2**34
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: photometric interpretations that pydicom yields as RGB (raw=False)
RGB_LIKE = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}
#: transfer syntax UID prefix -> the pydicom plugin packages that decode it
PLUGIN_HINTS = {
    "1.2.840.10008.1.2.4.20": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K (1.2.840.10008.1.2.4.201-203)
    "1.2.840.10008.1.2.4.9": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000 (.90-.93)
    "1.2.840.10008.1.2.4.": "pylibjpeg pylibjpeg-libjpeg",  # JPEG baseline/extended/lossless, JPEG-LS
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE
}
#: where to get a decoder that pydicom's plugins do not provide
VIDEO_HINT = "pydicom has no decoder for video streams; convert the loop to JPEG or uncompressed (e.g. dcmtk, gdcm)"


def read_dicom_header(path: str | os.PathLike, stream: BinaryIO | None = None) -> Dataset:
    """Read a DICOM file's header, without pixel data.

    Args:
        path: the file.
        stream: the file, already open for binary reading: read from its start instead of opening ``path``
            (which then only names it in errors).

    Returns:
        The dataset (with ``file_meta``), stopped before the pixel data.

    Raises:
        InputError: the file is not DICOM or its header is corrupt.
    """
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(_rewound(stream) if stream is not None else path, stop_before_pixels=True)
    except InvalidDicomError:
        raise InputError(f"{path}: not a DICOM file (no 'DICM' marker) and not a known image/video type") from None
    except MemoryError:
        raise
    except Exception as e:  # pydicom raises many kinds (EOFError, ValueError, BytesLengthException, ...) for damage
        raise InputError(f"{path}: DICOM header cannot be read: {_one_line(e)}") from None
    try:
        with quiet_pydicom():
            _convert_public(ds.file_meta)
            _convert_public(ds)
    except MemoryError:
        raise
    except Exception as e:  # as above: a value pydicom cannot convert
        raise InputError(f"{path}: DICOM header is corrupt: {_one_line(e)}") from None
    return ds


def _convert_public(ds: Dataset) -> None:
    """Convert every public element now: pydicom converts values when first used, so a corrupt one would fail
    wherever that happens. Private elements are never used by echokdm and stay as they are."""
    for tag in list(ds.keys()):
        if tag.is_private:
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _convert_public(item)


def read_dicom_cine(
    path: str | os.PathLike, stream: BinaryIO | None = None
) -> tuple[np.ndarray, dict[str, Any], list[UltrasoundRegion]]:
    """Decode an ultrasound DICOM file into grey frames, frame by frame.

    Args:
        path: a DICOM file (Modality US or an ultrasound SOP class).
        stream: see :func:`read_dicom_header`.

    Returns:
        frames: (T, H, W) uint8 grey frames (T=1 for a single-frame image).
        meta: frame timing, equipment, transfer syntax, photometric interpretation, original shape,
            study/series UIDs, ``spacing_mm`` from PixelSpacing when present (no patient fields).
        regions: the ultrasound calibration regions (possibly empty).

    Raises:
        InputError: not ultrasound, no pixel data, truncated pixel data, zero frames, absurd dimensions.
        UnsupportedError: the transfer syntax or photometric interpretation cannot be decoded here.
    """
    return decode_dicom(path, stream)[:3]


def decode_dicom(
    path: str | os.PathLike, stream: BinaryIO | None = None
) -> tuple[np.ndarray, dict[str, Any], list[UltrasoundRegion], Dataset]:
    """:func:`read_dicom_cine` from one open of the file, with the header it read (without pixel data).

    Returns:
        (frames, meta, regions) as :func:`read_dicom_cine`, and the header as :func:`read_dicom_header` reads it.
    """
    if stream is None:
        try:
            f = open(path, "rb")
        except OSError as e:
            raise InputError(f"{path}: DICOM header cannot be read: {_one_line(e)}") from None
        with f:
            return decode_dicom(path, f)
    with quiet_pydicom() as failures:
        return _read_dicom_cine(path, stream, failures)


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[list[str]]:
    """Keep pydicom's warnings (about values it repairs or ignores) off the console: echokdm says what matters in
    its own errors. Yields the messages of decoder plugins that failed on a frame (pydicom logs them and tries
    the next plugin, which may accept damaged data)."""
    failures: list[str] = []
    thread = threading.get_ident()

    class Failures(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:  # another thread's reads are not this one's
                failures.append(record.getMessage())

    handler = Failures(logging.ERROR)
    logger = logging.getLogger("pydicom")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"pydicom")
            yield failures
    finally:
        logger.removeHandler(handler)


def _read_dicom_cine(
    path: str | os.PathLike, f: BinaryIO, failures: list[str]
) -> tuple[np.ndarray, dict[str, Any], list[UltrasoundRegion], Dataset]:
    ds = read_dicom_header(path, f)
    _check_ultrasound(ds, path, f)
    t, h, w, samples = _geometry(ds, path)
    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    if tsyntax is None:
        raise InputError(f"{path}: DICOM file has no Transfer Syntax UID in its file meta information")
    _check_decoder(tsyntax, path)
    photometric = _photometric(ds, path)
    if tsyntax.is_deflated:
        _check_native_length(ds, path, f, t)
    else:
        _check_pixel_data(ds, path, f, tsyntax, t)
    frames = None  # allocated once the first frame has decoded to the size the header claims
    # frames are read from the file one at a time; a deflated file can only be inflated as a whole
    source = pydicom.dcmread(_rewound(f)) if tsyntax.is_deflated else f
    n = 0
    try:
        for n, arr in enumerate(iter_pixels(source), start=1):
            if n > t:
                break
            if failures:  # a decoder failed on this frame and pydicom fell back to another: damaged data
                raise InputError(f"{path}: pixel data is corrupt at frame {n - 1} ({tsyntax.name}): "
                                 f"{_one_line(failures[0])}")
            grey = _to_grey(arr, ds, photometric, path)
            if frames is None:
                frames = np.empty((t, h, w), np.uint8)
            frames[n - 1] = grey
    except AttributeError as e:
        if "no 'Pixel Data'" in str(e):
            raise InputError(f"{path}: DICOM file has no pixel data") from None
        raise InputError(f"{path}: pixel data cannot be decoded ({tsyntax.name}): {_one_line(e)}") from None
    except (ValueError, RuntimeError, OSError, EOFError, KeyError, IndexError, NotImplementedError) as e:
        raise InputError(
            f"{path}: pixel data is truncated or corrupt at frame {n} ({tsyntax.name}): {_one_line(e)}"
        ) from None
    if n == 0 or frames is None:
        raise InputError(f"{path}: DICOM file has no pixel data")
    if n < t:
        raise InputError(f"{path}: pixel data is truncated: {n} of {t} frames could be decoded")
    meta = {
        "format": "dicom",
        "sop_class": getattr(ds.get("SOPClassUID"), "name", None),
        "modality": ds.get("Modality"),
        "manufacturer": _text(ds.get("Manufacturer")),
        "model": _text(ds.get("ManufacturerModelName")),
        "transfer_syntax": tsyntax.name,
        "transfer_syntax_uid": str(tsyntax),
        "photometric_interpretation": photometric,
        "bits_stored": int(ds.get("BitsStored", 8)),
        "original_shape": [t, h, w, samples],
        "study_instance_uid": _text(ds.get("StudyInstanceUID")),
        "series_instance_uid": _text(ds.get("SeriesInstanceUID")),
        "heart_rate_bpm": _positive(ds.get("HeartRate")),
        **frame_timing(ds),
        **_pixel_spacing(ds),
    }
    return frames, meta, ultrasound_regions(ds), ds


def frame_timing(ds: Dataset) -> dict[str, Any]:
    """Frame time from FrameTime, FrameTimeVector, CineRate or RecommendedDisplayFrameRate, in that order.

    Args:
        ds: the dataset.

    Returns:
        ``frame_time_ms`` (float or None), ``frame_time_source`` (the attribute used or "unknown") and,
        for a FrameTimeVector, ``frame_time_vector_ms`` (the per-frame intervals, first one 0).
    """
    frame_time = _positive(ds.get("FrameTime"))
    if frame_time:
        return {"frame_time_ms": frame_time, "frame_time_source": "FrameTime"}
    vector = ds.get("FrameTimeVector")
    if vector is not None:
        many = isinstance(vector, (list, tuple, pydicom.multival.MultiValue))
        values = [float(v) for v in (vector if many else [vector])]
        intervals = [v for v in values[1:] if v > 0]
        if intervals:
            return {
                "frame_time_ms": float(np.mean(intervals)),
                "frame_time_source": "FrameTimeVector",
                "frame_time_vector_ms": values,
            }
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _positive(ds.get(keyword))
        if rate:
            return {"frame_time_ms": 1000.0 / rate, "frame_time_source": keyword}
    return {"frame_time_ms": None, "frame_time_source": "unknown"}


def _check_ultrasound(ds: Dataset, path: str | os.PathLike, f: BinaryIO) -> None:
    modality = str(ds.get("Modality", "") or "").strip()
    sop = str(ds.get("SOPClassUID", "") or "")
    if modality == "US" or sop in US_SOP_CLASSES:
        return
    if "DirectoryRecordSequence" in ds:
        raise InputError(f"{path}: is a DICOMDIR (the index of a DICOM media set), not an image; give an image file")
    if not modality and not sop:  # pydicom stops silently at the end of a cut file
        raise InputError(f"{path}: DICOM header is incomplete: no Modality and no SOP Class UID "
                         f"(a truncated or damaged file of {_size(f)} bytes?)")
    kind = getattr(ds.get("SOPClassUID"), "name", None) or "unknown SOP class"
    raise InputError(f"{path}: not an ultrasound image (Modality {modality or 'missing'}, {kind}); "
                     "expected Modality US")


def _geometry(ds: Dataset, path: str | os.PathLike) -> tuple[int, int, int, int]:
    """(frames, rows, columns, samples per pixel), checked to be plausible."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1))
        bits = int(ds.BitsAllocated)
        number_of_frames = ds.get("NumberOfFrames")
        frames = 1 if number_of_frames in (None, "") else int(number_of_frames)
    except AttributeError as e:
        missing = e.args[0].split()[-1] if e.args else "an image attribute"
        raise InputError(f"{path}: DICOM image lacks {missing}") from None
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: DICOM image attributes are malformed: {_one_line(e)}") from None
    if frames == 0:
        raise InputError(f"{path}: Number of Frames is 0; expected a loop with at least one frame")
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise InputError(f"{path}: absurd image size {cols}x{rows} pixels; expected 1..{MAX_SIDE} per side")
    if not 1 <= frames <= MAX_FRAMES or frames * rows * cols > MAX_PIXELS:
        raise InputError(f"{path}: absurd frame count {frames} for a {cols}x{rows} image; expected 1..{MAX_FRAMES}")
    if samples not in (1, 3):
        raise InputError(f"{path}: Samples per Pixel {samples}; expected 1 (grey/palette) or 3 (colour)")
    if bits not in (1, 8, 16, 32):
        raise InputError(f"{path}: Bits Allocated {bits}; expected 8 or 16")
    try:
        stored = int(ds.get("BitsStored", bits))
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: DICOM image attributes are malformed: {_one_line(e)}") from None
    if not 1 <= stored <= bits:
        raise InputError(f"{path}: Bits Stored {stored}; expected 1..{bits} (Bits Allocated {bits})")
    return frames, rows, cols, samples


def _photometric(ds: Dataset, path: str | os.PathLike) -> str:
    """The photometric interpretation, refused before decoding when missing or of an unknown kind."""
    if "PhotometricInterpretation" not in ds:
        raise InputError(f"{path}: DICOM image lacks 'PhotometricInterpretation'")
    photometric = str(ds.PhotometricInterpretation or "").strip()
    known = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", *sorted(RGB_LIKE))
    if photometric not in known:
        raise UnsupportedError(f"{path}: photometric interpretation {photometric!r} is not supported; "
                               f"expected one of {', '.join(known)}")
    return photometric


def _check_decoder(tsyntax: pydicom.uid.UID, path: str | os.PathLike) -> None:
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        hint = VIDEO_HINT if tsyntax in pydicom.uid.MPEGTransferSyntaxes else "no pydicom plugin decodes it"
        raise UnsupportedError(f"{path}: transfer syntax {tsyntax.name} ({tsyntax}) cannot be decoded: "
                               f"{hint}") from None
    if not decoder.is_available:
        plugin = next((pkg for prefix, pkg in PLUGIN_HINTS.items() if str(tsyntax).startswith(prefix)), "pylibjpeg")
        others = "; ".join(decoder.missing_dependencies)
        raise UnsupportedError(
            f"{path}: transfer syntax {tsyntax.name} ({tsyntax}) needs a decoder plugin that is not installed: "
            f"pip install {plugin}" + (f" (pydicom would also use: {others})" if others else "")
        )


def _check_native_length(ds: Dataset, path: str | os.PathLike, f: BinaryIO, frames: int) -> None:
    """Uncompressed pixel data must hold every frame: compare the bytes present with those expected."""
    full = pydicom.dcmread(_rewound(f), defer_size=1024)
    elem = full.get_item("PixelData") if "PixelData" in full else None
    if elem is None:
        raise InputError(f"{path}: DICOM file has no pixel data")
    if elem.value is None and isinstance(elem, pydicom.dataelem.RawDataElement):  # deferred: not read yet
        present = min(elem.length, max(_size(f) - elem.value_tell, 0))
    else:
        present = len(elem.value or b"")
    _compare_native_length(full, path, frames, present)


FRAME_STARTS = (b"\xff\xd8\xff", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP")


def _check_pixel_data(ds: Dataset, path: str | os.PathLike, f: BinaryIO, tsyntax: pydicom.uid.UID, frames: int) -> None:
    """Check that the pixel data holds what the header claims, reading item headers only (nothing is decoded or
    allocated, so a header claiming thousands of frames fails at once).

    Uncompressed data must hold every frame, and not a frame or more beyond them (Rows, Columns or Number of
    Frames would then contradict the data). Encapsulated data needs at least one fragment per frame, each
    within the file, up to the sequence delimiter.

    Raises:
        InputError: no pixel data, truncated or contradictory pixel data.
    """
    size = _size(f)
    end = "<" if tsyntax.is_little_endian else ">"
    pydicom.dcmread(_rewound(f), stop_before_pixels=True)  # leaves f at the pixel data's tag, or at the end
    start = f.tell()
    head = f.read(12)
    if len(head) < (8 if tsyntax.is_implicit_VR else 12):
        raise InputError(f"{path}: DICOM file has no pixel data")
    if tsyntax.is_implicit_VR:  # tag, 4-byte length
        group, elem, length = struct.unpack(f"{end}HHL", head[:8])
        f.seek(start + 8)
    else:  # tag, VR (OB/OW), 2 reserved bytes, 4-byte length
        group, elem = struct.unpack(f"{end}HH", head[:4])
        (length,) = struct.unpack(f"{end}L", head[8:12])
    if (group, elem) != (0x7FE0, 0x0010):
        raise UnsupportedError(f"{path}: pixel data element ({group:04X},{elem:04X}) is not supported; "
                               "expected (7FE0,0010) Pixel Data")
    encapsulated = length == 0xFFFFFFFF
    if not tsyntax.is_compressed:
        if encapsulated:
            raise InputError(f"{path}: pixel data is encapsulated (compressed) "
                             f"but the transfer syntax {tsyntax.name} is uncompressed")
        _compare_native_length(ds, path, frames, min(length, max(size - f.tell(), 0)))
        return
    if not encapsulated:
        raise InputError(f"{path}: pixel data is not encapsulated "
                         f"although the transfer syntax {tsyntax.name} is compressed")
    fragments, starts = -1, 0  # the first item is the basic offset table; starts: JPEG / J2K / JP2 frame starts
    while True:
        item = f.read(8)
        if len(item) < 8:
            raise InputError(f"{path}: pixel data is truncated: the file ends after {max(fragments, 0)} fragment(s), "
                             "before the sequence delimiter")
        tag_group, tag_elem, item_length = struct.unpack(f"{end}HHL", item)
        if (tag_group, tag_elem) == (0xFFFE, 0xE0DD):
            break
        if (tag_group, tag_elem) != (0xFFFE, 0xE000) or item_length == 0xFFFFFFFF:
            raise InputError(f"{path}: encapsulated pixel data is corrupt: "
                             f"item {fragments + 1} has tag ({tag_group:04X},{tag_elem:04X})")
        if f.tell() + item_length > size:
            raise InputError(f"{path}: pixel data is truncated: fragment {fragments + 1} runs past the end of the file")
        lead = f.read(min(item_length, 4)) if fragments >= 0 else b""
        f.seek(item_length - len(lead), os.SEEK_CUR)
        starts += lead.startswith(FRAME_STARTS)
        fragments += 1
    if fragments < frames:
        raise InputError(f"{path}: Number of Frames is {frames} but the encapsulated pixel data holds only "
                         f"{max(fragments, 0)} fragment(s) after an offset table ({fragments + 1} items); truncated "
                         "data, a missing basic offset table or a wrong Number of Frames")
    if starts > frames:
        raise InputError(f"{path}: Number of Frames is {frames} but the encapsulated pixel data holds {starts} "
                         "encoded frames (fragments that start a JPEG / JPEG 2000 image); they contradict each other")


def _compare_native_length(ds: Dataset, path: str | os.PathLike, frames: int, present: int) -> None:
    expected = get_expected_length(ds)
    if present < expected:
        raise InputError(
            f"{path}: pixel data is truncated: {present} bytes, expected {expected} for {frames} frame(s) "
            f"of {ds.Columns}x{ds.Rows}"
        )
    full_422 = str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422" and present == expected * 3 // 2
    # (not full_422: pydicom reads YBR_FULL_422 stored unsubsampled)
    if present - expected >= max(expected // frames, 2) and not full_422:
        raise InputError(
            f"{path}: pixel data holds {present} bytes, {present / (expected / frames):.1f} frames' worth, but Rows, "
            f"Columns and Number of Frames ({ds.Rows}, {ds.Columns}, {frames}) describe {expected}; "
            "they contradict the data"
        )


def _to_grey(arr: np.ndarray, ds: Dataset, photometric: str, path: str | os.PathLike) -> np.ndarray:
    """One decoded frame (as yielded by pydicom with raw=False) to (H, W) uint8 grey."""
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        top = 65535.0 if rgb.dtype == np.uint16 else 255.0
        return _quantise(rgb.astype(np.float32) @ LUMA, top)
    if arr.ndim == 3:
        if photometric not in RGB_LIKE:
            raise UnsupportedError(f"{path}: photometric interpretation {photometric} is not supported for colour data")
        if arr.dtype == np.uint8:
            return _quantise(arr.astype(np.float32) @ LUMA, 255.0)
        return _quantise(arr.astype(np.float32) @ LUMA, float(2 ** int(ds.get("BitsStored", 16)) - 1))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedError(f"{path}: photometric interpretation {photometric!r} is not supported for grey data")
    bits = int(ds.get("BitsStored", ds.BitsAllocated))
    top = float(2**bits - 1)
    grey = arr.astype(np.float32)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        grey += 2 ** (bits - 1)
    if photometric == "MONOCHROME1":
        grey = top - grey
    if arr.dtype == np.uint8 and photometric == "MONOCHROME2":
        return arr
    return _quantise(grey, top)


def _quantise(grey: np.ndarray, top: float) -> np.ndarray:
    return np.clip(np.rint(grey * (255.0 / top)), 0, 255).astype(np.uint8)


def _pixel_spacing(ds: Dataset) -> dict[str, Any]:
    spacing = ds.get("PixelSpacing")
    try:
        dy, dx = (float(v) for v in spacing)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return {"spacing_mm": None, "spacing_source": "unknown"}
    if dy > 0 and dx > 0:
        return {"spacing_mm": [dy, dx], "spacing_source": "PixelSpacing"}
    return {"spacing_mm": None, "spacing_source": "unknown"}


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and np.isfinite(v) else None


def _rewound(f: BinaryIO) -> BinaryIO:
    f.seek(0)
    return f


def _size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def _one_line(error: Exception) -> str:
    """An exception's message on one line (decoders list one failure per plugin on separate lines)."""
    # no memory addresses: same file, same message
    return re.sub(r" at 0x[0-9a-f]+>", ">", " ".join(str(error).split()))


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None

