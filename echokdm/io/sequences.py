"""Read cine loops that are not DICOM: NIfTI/MHD image sequences, AVI/MP4 videos, animated GIFs, PNG/JPEG frames.

Each reader returns 8-bit grey frames (T, H, W) and the same meta keys as the DICOM reader, with the
values the format can give (frame time and spacing are often unknown: they are then None, never guessed).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from echokdm.errors import InputError
from echokdm.io.dicom import LUMA, MAX_PIXELS, MAX_SIDE

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mhd", ".mha", ".nrrd")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
GIF_SUFFIXES = (".gif",)


def suffix_of(path: str | os.PathLike) -> str:
    """Lower-case suffix, with ``.nii.gz`` kept whole."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """PNG/JPEG files of a folder in natural order (frame2 before frame10).

    Raises:
        InputError: an entry named like a frame is not a regular file (a pipe, device, folder or broken link).
    """
    named = [p for p in Path(folder).iterdir() if suffix_of(p) in FRAME_SUFFIXES]
    if odd := next((p for p in named if not p.is_file()), None):
        what = "a broken symbolic link" if not odd.exists() else "a folder" if odd.is_dir() else "a pipe or device"
        raise InputError(f"{odd}: frame of {folder} is {what}, not a regular file")
    files = named
    return sorted(files, key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])


class NativeStderr:
    """Collects what C/C++ libraries (ITK's MetaIO, FFmpeg) write straight to the process's stderr while a file
    is read, so that a reader puts it in its one-line error instead of letting it spill onto the console.

    Use as ``with NativeStderr() as native: ...``; ``native.text`` is what was written so far, on one line.
    """

    def __enter__(self) -> NativeStderr:
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.close()

    @property
    def text(self) -> str:
        self._file.seek(0)
        text = " ".join(self._file.read().decode(errors="replace").split())
        return re.sub(r" @ 0x[0-9a-f]+\]", "]", text)  # FFmpeg names its decoder with a memory address


def check_nifti(path: str | os.PathLike) -> None:
    """Read a NIfTI file's data with nibabel: ITK reads a cut file without error (the missing voxels become 0)
    and NaN as 0, so a NIfTI file read with SimpleITK is checked here first.

    Raises:
        InputError: truncated or unreadable data, or NaN / infinite values.
    """
    import nibabel as nib

    try:
        image = nib.load(str(path))
        _check_size(image.shape, 1, path)
        data = np.asanyarray(image.dataobj)
    except InputError:
        raise
    except Exception as e:  # nibabel, gzip and zlib raise many kinds for damaged files
        raise InputError(f"{path}: image cannot be read: {' '.join(str(e).split()) or type(e).__name__}") from None
    if data.dtype.kind in "fc" and not np.all(np.isfinite(data)):
        raise InputError(f"{path}: image holds non-finite values (NaN or infinity)")


def read_volume_sequence(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """A NIfTI/MHD/NRRD image whose last axis is time (CAMUS ``_half_sequence`` layout), or one 2D image.

    Args:
        path: the image file.

    Returns:
        (T, H, W) uint8 frames and meta (spacing from the header, frame time unknown).

    Raises:
        InputError: unreadable, or not a 2D image / 2D+time sequence.
    """
    if suffix_of(path) in (".nii", ".nii.gz"):
        check_nifti(path)
    import SimpleITK as sitk

    image = read_sitk_image(path)
    arr = sitk.GetArrayFromImage(image)  # (T, H, W[, C]) for a 3D image, (H, W[, C]) for 2D
    spacing = image.GetSpacing()
    channels = image.GetNumberOfComponentsPerPixel()
    if channels > 1:
        arr = arr.astype(np.float32) @ LUMA[:channels] if channels == 3 else arr[..., 0]
    arr = np.squeeze(arr) if arr.ndim > 3 else arr
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"{path}: image has shape {arr.shape}; expected a 2D image or a 2D+time sequence")
    meta = {
        "format": suffix_of(path).lstrip(".").replace(".gz", ""),
        "spacing_mm": [float(spacing[1]), float(spacing[0])],
        "spacing_source": "image header",
        "frame_time_ms": None,
        "frame_time_source": "unknown",
        "original_shape": [int(s) for s in arr.shape],
    }
    return _to_uint8(arr, meta), meta


def read_sitk_image(path: str | os.PathLike):
    """Read an image with SimpleITK, refusing absurd sizes from the header before any voxel is allocated; its
    messages on stderr (MetaIO prints why data is missing) go into the error.

    Raises:
        InputError: SimpleITK cannot read the file, or the header claims more than MAX_SIDE pixels per side or
            more than MAX_PIXELS voxels.
    """
    import SimpleITK as sitk

    _check_data_files(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with NativeStderr() as native:
        try:
            reader.ReadImageInformation()
            _check_size(reader.GetSize(), reader.GetNumberOfComponents(), path)
            return reader.Execute()
        except RuntimeError as e:
            why = native.text or str(e).strip().splitlines()[-1]
            raise InputError(f"{path}: image cannot be read: {why}") from None


def _check_data_files(path: str | os.PathLike) -> None:
    """Refuse a MetaImage header whose data file (``ElementDataFile``) is a pipe or device: reading it could wait
    forever or never end."""
    if suffix_of(path) != ".mhd":
        return
    with open(path, "rb") as f:
        header = f.read(65536).decode("latin-1")
    match = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", header, re.MULTILINE)
    name = match.group(1) if match else "LOCAL"
    if name.upper() in ("LOCAL", "LIST") or "%" in name:
        return
    data = Path(path).parent / name
    if data.exists() and not data.is_file():
        raise InputError(f"{path}: its data file {data} is not a regular file (a pipe, device or folder)")


def _check_size(size: tuple[int, ...], components: int, path: str | os.PathLike) -> None:
    if any(s > MAX_SIDE for s in size[:2]) or int(np.prod(size, dtype=np.int64)) * components > MAX_PIXELS:
        raise InputError(
            f"{path}: absurd image size {' x '.join(map(str, size))}; expected 1..{MAX_SIDE} pixels per side"
        )


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """An AVI (EchoNet-Dynamic) or other video read with OpenCV.

    Args:
        path: the video file.

    Returns:
        (T, H, W) uint8 frames and meta (frame time from the video's frame rate).

    Raises:
        InputError: the video cannot be opened or has no frames.
    """
    import cv2

    with NativeStderr() as native:  # FFmpeg reports damaged streams on stderr: they go into the error
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise InputError(f"{path}: video cannot be opened (unknown codec or not a video)")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0)
        claimed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        frames = []
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr)
        finally:
            capture.release()
        why = native.text
    if not frames:
        raise InputError(f"{path}: video has no frames" + (f": {why}" if why else ""))
    # an AVI header counts its frames exactly; other containers may estimate the count from the duration
    if len(frames) < claimed - (0 if suffix_of(path) == ".avi" else 1):
        raise InputError(
            f"{path}: video is truncated or damaged: {len(frames)} of {claimed} frames could be decoded"
            + (f" ({why})" if why else "")
        )
    meta = {
        "format": "video",
        "spacing_mm": None,
        "spacing_source": "unknown",
        "frame_time_ms": 1000.0 / fps if fps > 0 else None,
        "frame_time_source": "video frame rate" if fps > 0 else "unknown",
        "original_shape": [len(frames), *frames[0].shape],
    }
    return np.stack(frames), meta


def read_gif(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """An animated GIF (each frame composited as displayed), frame time from the frames' durations.

    Args:
        path: the GIF file.

    Returns:
        (T, H, W) uint8 grey frames and meta (frame time: the median frame duration; unknown when the file
        gives none).

    Raises:
        InputError: the file cannot be decoded as a GIF.
    """
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format != "GIF":
                raise InputError(f"{path}: not a GIF image (found {im.format})")
            frames, durations = [], []
            for frame in ImageSequence.Iterator(im):
                frames.append(np.asarray(frame.convert("L")))
                durations.append(float(frame.info.get("duration") or 0))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: GIF cannot be read: {' '.join(str(e).split()) or type(e).__name__}") from None
    _check_size((len(frames), *frames[0].shape), 1, path)
    known = [d for d in durations if d > 0]
    frame_time = float(np.median(known)) if known else None
    meta = {
        "format": "gif",
        "spacing_mm": None,
        "spacing_source": "unknown",
        "frame_time_ms": frame_time,
        "frame_time_source": "GIF frame durations" if frame_time else "unknown",
        "original_shape": [len(frames), *frames[0].shape],
    }
    return np.stack(frames), meta


def read_frames(paths: list[Path], source: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """PNG/JPEG frames (a folder's files in order, or one image) as one loop.

    Args:
        paths: the image files, in frame order.
        source: the folder or file named by the user (for messages).

    Returns:
        (T, H, W) uint8 frames and meta (frame time and spacing unknown).

    Raises:
        InputError: a frame cannot be read or the frames differ in size.
    """
    import imageio.v3 as iio

    frames = []
    for p in paths:
        try:
            img = iio.imread(p)
        except Exception as e:  # each imageio plugin (Pillow, SimpleITK, ...) raises its own kinds
            raise InputError(f"{p}: image cannot be read: {' '.join(str(e).split()) or type(e).__name__}") from None
        if img.ndim == 3:
            img = img[..., :3].astype(np.float32) @ LUMA if img.shape[-1] >= 3 else img[..., 0]
        grey = _to_uint8(np.asarray(img)[None], {})[0]
        if frames and grey.shape != frames[0].shape:
            raise InputError(
                f"{p}: frame size {grey.shape[::-1]} differs from the first frame's {frames[0].shape[::-1]}"
            )
        frames.append(grey)
    meta = {
        "format": "frames",
        "spacing_mm": None,
        "spacing_source": "unknown",
        "frame_time_ms": None,
        "frame_time_source": "unknown",
        "original_shape": [len(frames), *frames[0].shape],
    }
    return np.stack(frames), meta


def _to_uint8(arr: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Grey values to uint8: 8-bit data as is, anything else scaled from its min..max to 0..255."""
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8)
    lo, hi = float(arr.min()), float(arr.max())
    meta["intensity_range"] = [lo, hi]
    scaled = (arr.astype(np.float32) - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
