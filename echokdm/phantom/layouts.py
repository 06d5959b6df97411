"""Write phantom loops as DICOM / CAMUS / EchoNet-Dynamic folders (each with a ``manifest.csv``).

Every layout is documented in ``data_specs/layouts.md``; :mod:`echokdm.data.camus` and
:mod:`echokdm.data.echonet` read the CAMUS and EchoNet-Dynamic ones, as they read the real data sets.
Writers go through an :class:`~echokdm.outputs.OutputDir` (atomic files) and return one ``manifest.csv``
row per loop.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echokdm.errors import InputError
from echokdm.labels import camus_labels
from echokdm.outputs import OutputDir
from echokdm.phantom.simulate import PhantomLoop

LAYOUTS = ("dicom", "camus", "camus2019", "echonet")
ECHONET_SIZE = 112
ECHONET_SPLITS = {"train": "TRAIN", "val": "VAL", "test": "TEST"}
MANIFEST_FIELDS = [
    "name", "path", "layout", "split", "seed", "n_frames", "height", "width", "spacing_mm", "frame_time_ms",
    "heart_rate_bpm", "ed", "es", "ef", "edv_ml", "esv_ml", "target_ef",
]


def layout_overrides(layout: str) -> dict[str, Any]:
    """Parameter overrides a layout imposes (the real data sets have no burned-in UI; EchoNet is 112x112).

    Raises:
        InputError: unknown layout.
    """
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return {
        "dicom": {},
        "camus": {"ui": False},
        "camus2019": {"ui": False},
        "echonet": {"ui": False, "height": ECHONET_SIZE, "width": ECHONET_SIZE},
    }[layout]


# ---- writing ---------------------------------------------------------------------------------------------
def to_uint8(frames: np.ndarray) -> np.ndarray:
    """[0, 1] float frames -> uint8 (rounded)."""
    return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


def _write_with_suffix(out: OutputDir, name: str, suffix: str, writer: Callable[[str], None]) -> None:
    """Atomic write through a library that picks the format from the file name's suffix."""
    with out.atomic(name) as tmp:
        named = tmp.parent / (tmp.name + suffix)
        try:
            writer(str(named))
            os.replace(named, tmp)
        finally:
            if named.exists():
                named.unlink()


def write_nifti(out: OutputDir, name: str, array: np.ndarray, spacing_mm: Sequence[float]) -> None:
    """Write a (H, W) image or (T, H, W) sequence as NIfTI the ITK way (time slowest, x = columns).

    Args:
        out: output folder.
        name: file name inside it, ending in ``.nii.gz``.
        array: uint8 image or sequence.
        spacing_mm: (dy, dx).
    """
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    dy, dx = (float(s) for s in spacing_mm)
    img.SetSpacing((dx, dy) if array.ndim == 2 else (dx, dy, 1.0))
    _write_with_suffix(out, name, ".nii.gz", lambda p: sitk.WriteImage(img, p, useCompression=True))


def write_mhd(out: OutputDir, name: str, array: np.ndarray, spacing_mm: Sequence[float]) -> None:
    """Write a (H, W) image or (T, H, W) sequence as MetaImage ``NAME.mhd`` + uncompressed ``NAME.raw``, as the
    2019 CAMUS release stores them (x = columns, time slowest, spacing (dx, dy[, 1])).

    Args:
        out: output folder.
        name: file name inside it, ending in ``.mhd``.
        array: uint8 image or sequence.
        spacing_mm: (dy, dx).
    """
    raw = name[: -len(".mhd")] + ".raw"
    dy, dx = (float(s) for s in spacing_mm)
    dims = [array.shape[-1], array.shape[-2]] + ([array.shape[0]] if array.ndim == 3 else [])
    spacing = [dx, dy] + ([1.0] if array.ndim == 3 else [])
    n = len(dims)
    header = {
        "ObjectType": "Image", "NDims": n, "BinaryData": "True", "BinaryDataByteOrderMSB": "False",
        "CompressedData": "False",
        "TransformMatrix": " ".join("1" if i == j else "0" for i in range(n) for j in range(n)),
        "Offset": " ".join(["0"] * n), "CenterOfRotation": " ".join(["0"] * n),
        "ElementSpacing": " ".join(f"{v:.9g}" for v in spacing), "DimSize": " ".join(map(str, dims)),
        "ElementType": "MET_UCHAR", "ElementDataFile": Path(raw).name,
    }  # fmt: skip
    with out.atomic(raw) as tmp:
        tmp.write_bytes(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    out.write_text(name, "".join(f"{k} = {v}\n" for k, v in header.items()))


def _row(loop: PhantomLoop, name: str, path: str, layout: str, split: str) -> dict[str, Any]:
    p = loop.params
    return {
        "name": name,
        "path": path,
        "layout": layout,
        "split": split,
        "seed": p["seed"],
        "n_frames": loop.frames.shape[0],
        "height": loop.frames.shape[1],
        "width": loop.frames.shape[2],
        "spacing_mm": round(loop.spacing_mm[0], 6),
        "frame_time_ms": round(loop.frame_time_ms, 4),
        "heart_rate_bpm": p["heart_rate_bpm"],
        "ed": " ".join(map(str, loop.ed)),
        "es": " ".join(map(str, loop.es)),
        "ef": round(loop.ef, 3),
        "edv_ml": round(loop.edv, 3),
        "esv_ml": round(loop.esv, 3),
        "target_ef": p["target_ef"],
    }


def write_dicom_loop(out: OutputDir, name: str, loop: PhantomLoop, split: str, ddf: bool = True) -> dict[str, Any]:
    """``NAME.dcm`` (US multi-frame cine), ``NAME_label.nii.gz`` (T, H, W labels 0-6), ``NAME_ddf.npz``
    (``ddf_from_ed``, ``ddf_to_next`` float16 pixels (T, 2, H, W)) and ``NAME.json`` (parameters).

    Returns:
        The manifest row.
    """
    from echokdm.io import write_cine_dicom

    with out.atomic(f"{name}.dcm") as tmp:
        write_cine_dicom(
            tmp, to_uint8(loop.frames), frame_time_ms=loop.frame_time_ms, spacing_mm=loop.spacing_mm,
            heart_rate_bpm=loop.params["heart_rate_bpm"], series_description="echokdm phantom A4C",
            derivation=f"echokdm phantom seed {loop.params['seed']}",
        )
    write_nifti(out, f"{name}_label.nii.gz", loop.labels, loop.spacing_mm)
    files = {"dicom": f"{name}.dcm", "label": f"{name}_label.nii.gz"}
    if ddf:
        with out.atomic(f"{name}_ddf.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f, ddf_from_ed=loop.ddf_from_ed.astype(np.float16), ddf_to_next=loop.ddf_to_next.astype(np.float16),
                sector_mask=loop.sector_mask,
            )
        files["ddf"] = f"{name}_ddf.npz"
    out.write_json(f"{name}.json", {"files": files, **_sidecar(loop)})
    return _row(loop, name, files["dicom"], "dicom", split)


def _sidecar(loop: PhantomLoop) -> dict[str, Any]:
    return {
        "ed": loop.ed, "es": loop.es, "ef": loop.ef, "edv_ml": loop.edv, "esv_ml": loop.esv,
        "spacing_mm": list(loop.spacing_mm), "frame_time_ms": loop.frame_time_ms, "params": loop.params,
    }


def camus_quality(params: dict[str, Any]) -> str:
    """CAMUS ImageQuality (Good / Medium / Poor) from the phantom's haze, dropout and noise."""
    score = params["haze"] + params["dropout"] + max(0.0, (params["noise_db"] + 70.0) / 10.0)
    return "Good" if score < 0.8 else "Medium" if score < 1.5 else "Poor"


def write_camus_patient(
    out: OutputDir, number: int, loop: PhantomLoop, split: str, release: str = "2023"
) -> dict[str, Any]:
    """``patientNNNN/`` as a CAMUS release names it: for each view (2CH, 4CH) the ED and ES images with their
    ``_gt`` masks, the ED->ES sequence (and, 2023, its ``_gt``), ``Info_<view>.cfg``, plus
    ``patientNNNN_4CH_phantom.json``. Masks keep CAMUS labels 0-3 only.

    The phantom has no two-chamber anatomy: the 2CH files hold the same A4C loop (so a biplane volume of the
    two views equals the single-plane Simpson volume of the 4CH view).

    Args:
        release: ``"2023"`` (NIfTI, ``_half_sequence`` and its ``_gt``; cfg with EF and FrameRate) or ``"2019"``
            (``.mhd`` + ``.raw``, ``_sequence`` without ``_gt``; cfg with LVef and no FrameRate).

    Returns:
        The manifest row.
    """
    pid = f"patient{number:04d}"
    ed, es = loop.ed[0], loop.es[0]
    frames = to_uint8(loop.frames[ed : es + 1])
    labels = camus_labels(loop.labels[ed : es + 1])
    p = loop.params
    cfg: dict[str, Any] = {
        "ED": 1, "ES": len(frames), "NbFrame": len(frames), "Sex": p["sex"], "Age": p["age"],
        "ImageQuality": camus_quality(p),
    }  # fmt: skip
    if release == "2023":
        write, suffix, seq = write_nifti, ".nii.gz", "half_sequence"
        cfg.update(EF=round(loop.ef, 2), FrameRate=round(1000.0 / loop.frame_time_ms, 2),
                   LVedv=round(loop.edv, 2), LVesv=round(loop.esv, 2))
    else:
        write, suffix, seq = write_mhd, ".mhd", "sequence"
        cfg.update(LVedv=round(loop.edv, 2), LVesv=round(loop.esv, 2), LVef=round(loop.ef, 2))
    for view in ("2CH", "4CH"):
        base = f"{pid}/{pid}_{view}"
        write(out, f"{base}_ED{suffix}", frames[0], loop.spacing_mm)
        write(out, f"{base}_ED_gt{suffix}", labels[0], loop.spacing_mm)
        write(out, f"{base}_ES{suffix}", frames[-1], loop.spacing_mm)
        write(out, f"{base}_ES_gt{suffix}", labels[-1], loop.spacing_mm)
        write(out, f"{base}_{seq}{suffix}", frames, loop.spacing_mm)
        if release == "2023":
            write(out, f"{base}_{seq}_gt{suffix}", labels, loop.spacing_mm)
        out.write_text(f"{pid}/Info_{view}.cfg", "".join(f"{k}: {v}\n" for k, v in cfg.items()))
    out.write_json(f"{pid}/{pid}_4CH_phantom.json", _sidecar(loop))
    return _row(loop, pid, f"{pid}/{pid}_4CH_{seq}{suffix}", "camus" if release == "2023" else "camus2019", split)


def write_camus_split(out: OutputDir, rows: list[dict[str, Any]]) -> None:
    """``database_split/subgroup_{training,validation,testing}.txt`` (the 2023 release's split files) listing
    the patients of ``rows`` by their split."""
    names = {"train": "training", "val": "validation", "test": "testing"}
    for split, name in names.items():
        listed = [r["name"] for r in rows if r["split"] == split]
        if listed:
            out.write_text(f"database_split/subgroup_{name}.txt", "".join(f"{n}\n" for n in listed))


def echonet_name(seed: int) -> str:
    """EchoNet-style file name (``0X`` + 16 hex digits) of a phantom seed."""
    return f"0X{seed:016X}"


def write_echonet_video(out: OutputDir, loop: PhantomLoop, split: str) -> dict[str, Any]:
    """``Videos/NAME.avi`` (112x112, MJPG, 3 grey channels) and ``Sidecars/NAME.json``; the tables are
    written by :func:`write_echonet_tables` from the returned rows.

    Returns:
        The manifest row, with the EchoNet tracings of the ES and ED frames under ``"_tracings"``.

    Raises:
        InputError: the loop is not 112x112.
    """
    import cv2

    T, H, W = loop.frames.shape
    if (H, W) != (ECHONET_SIZE, ECHONET_SIZE):
        raise InputError(f"EchoNet-Dynamic videos are {ECHONET_SIZE}x{ECHONET_SIZE}; this loop is {H}x{W}")
    name = echonet_name(loop.params["seed"])
    fps = 1000.0 / loop.frame_time_ms
    frames = to_uint8(loop.frames)

    def writer(path: str) -> None:
        vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
        if not vw.isOpened():
            raise InputError("OpenCV cannot write MJPG AVI files on this machine")
        for f in frames:
            vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
        vw.release()

    _write_with_suffix(out, f"Videos/{name}.avi", ".avi", writer)
    out.write_json(f"Sidecars/{name}.json", _sidecar(loop))
    row = _row(loop, name, f"Videos/{name}.avi", "echonet", split)
    mids = loop.params["mitral_annulus_mid_px"]  # (row, col) at ED and ES
    row["_tracings"] = [
        (loop.es[0], volume_tracing(loop.labels[loop.es[0]] == 1, mids[1])),
        (loop.ed[0], volume_tracing(loop.labels[loop.ed[0]] == 1, mids[0])),
    ]
    return row


def volume_tracing(cavity: np.ndarray, annulus_mid: Sequence[float], n_disks: int = 20) -> np.ndarray:
    """EchoNet-style tracing of a cavity: row 0 the long axis from the mitral annulus midpoint (X1, Y1)
    to the apex (X2, Y2), then ``n_disks`` chords perpendicular to it at equal steps from base to apex,
    each from the septal-side (X1, Y1) to the other-side (X2, Y2) border crossing.

    Args:
        cavity: (H, W) bool LV cavity.
        annulus_mid: (row, col) of the mitral annulus midpoint.
        n_disks: number of chords.

    Returns:
        (n_disks + 1, 4) float (X1, Y1, X2, Y2) in pixels.
    """
    from skimage.measure import find_contours

    contours = find_contours(np.pad(cavity.astype(np.float64), 1), 0.5)
    poly = max(contours, key=len)[:, ::-1] - 1.0  # (x, y)
    mid = np.array([annulus_mid[1], annulus_mid[0]], dtype=np.float64)
    apex = poly[np.argmax(np.hypot(*(poly - mid).T))]
    axis = (apex - mid) / np.hypot(*(apex - mid))
    normal = np.array([axis[1], -axis[0]])
    rows = [np.r_[mid, apex]]
    a, b = poly, np.roll(poly, -1, axis=0)
    length = np.hypot(*(apex - mid))
    for k in range(n_disks):
        centre = mid + axis * length * (k + 0.5) / n_disks
        da, db = (a - centre) @ axis, (b - centre) @ axis
        cross = (da * db <= 0) & (da != db)
        x = a[cross] + (da[cross] / (da[cross] - db[cross]))[:, None] * (b[cross] - a[cross])
        t = (x - centre) @ normal
        left = x[t < 0][np.argmax(t[t < 0])] if (t < 0).any() else centre
        right = x[t >= 0][np.argmin(t[t >= 0])] if (t >= 0).any() else centre
        rows.append(np.r_[left, right])
    return np.array(rows)


def write_echonet_tables(out: OutputDir, rows: list[dict[str, Any]]) -> None:
    """``FileList.csv`` and ``VolumeTracings.csv`` for the videos of ``rows`` (ES tracing first, ED last,
    as EchoNet-Dynamic's loader expects: its largest trace is the last one)."""
    fl = io.StringIO()
    w = csv.writer(fl, lineterminator="\n")
    w.writerow(["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"])
    for r in rows:
        w.writerow([r["name"], r["ef"], r["esv_ml"], r["edv_ml"], r["height"], r["width"],
                    round(1000.0 / r["frame_time_ms"], 4), r["n_frames"], ECHONET_SPLITS[r["split"]]])
    out.write_text("FileList.csv", fl.getvalue())
    vt = io.StringIO()
    w = csv.writer(vt, lineterminator="\n")
    w.writerow(["FileName", "X1", "Y1", "X2", "Y2", "Frame"])
    for r in rows:
        for frame, trace in r["_tracings"]:
            for x1, y1, x2, y2 in trace:
                w.writerow([f"{r['name']}.avi", f"{x1:.4f}", f"{y1:.4f}", f"{x2:.4f}", f"{y2:.4f}", frame])
    out.write_text("VolumeTracings.csv", vt.getvalue())


def write_manifest(out: OutputDir, rows: list[dict[str, Any]]) -> None:
    """``manifest.csv``: one row per loop (MANIFEST_FIELDS)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    out.write_text("manifest.csv", buf.getvalue())


def manifest_rows(root: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a phantom folder's ``manifest.csv``."""
    path = Path(root) / "manifest.csv"
    if not path.exists():
        raise InputError(f"{root}: no manifest.csv (not a phantom folder)")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


__all__ = [
    "LAYOUTS", "generate", "layout_overrides", "manifest_rows", "volume_tracing", "write_camus_patient",
    "write_camus_split", "write_mhd", "write_dicom_loop", "write_echonet_tables", "write_echonet_video",
    "write_manifest", "write_nifti",
]


# ---- a whole folder ------------------------------------------------------------------------------------
def generate(
    out_dir: str | os.PathLike,
    n: int,
    layout: str = "dicom",
    *,
    seed: int = 0,
    split: str = "train",
    size: int | None = None,
    frames: int | None = None,
    ef_range: tuple[float, float] | None = None,
    renderers: Sequence[str] = ("scatter",),
    ddf: bool = True,
    overwrite: bool = False,
    progress_bar: bool | None = None,
    appearance: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Simulate ``n`` loops and write them in ``layout`` with a ``manifest.csv``.

    Every parameter is checked (all loops are sampled) before anything is written.

    Args:
        out_dir: output folder (created; a non-empty one only with ``overwrite`` and if echokdm made it).
        n: number of loops (>= 1).
        layout: ``dicom``, ``camus`` (the 2023 NIfTI release), ``camus2019`` (the 2019 MHD release) or ``echonet``.
        seed: first seed inside the split's seed block (see :func:`echokdm.phantom.split_seeds`).
        split: ``train``, ``val`` or ``test``.
        size: image side (default 256; EchoNet is always 112).
        frames: frames per loop (default: 30-60 per beat).
        ef_range: (min, max) target EF in percent, within 5-90 (default 15-80).
        renderers: image-formation models each loop's is drawn from (``scatter``, ``cole``).
        ddf: write the displacement fields (DICOM layout).
        overwrite: replace an existing echokdm folder.
        progress_bar: force the progress bar on/off (default: on a terminal).
        appearance: parameters of :func:`echokdm.phantom.sample_params` fixed for every loop (e.g.
            ``{"blood_db": -8.0, "haze": 1.0}``: a shifted image domain).

    Returns:
        The manifest rows.

    Raises:
        InputError: a bad parameter (nothing is written).
        OutputError: the output folder cannot be used.
    """
    from echokdm.phantom.sampling import sample_params, split_seeds
    from echokdm.phantom.simulate import simulate
    from echokdm.progress import progress

    overrides = {**(appearance or {}), **layout_overrides(layout)}
    if layout == "echonet" and size not in (None, ECHONET_SIZE):
        raise InputError(f"EchoNet-Dynamic videos are {ECHONET_SIZE}x{ECHONET_SIZE}; drop --size or use {ECHONET_SIZE}")
    seeds = split_seeds(split, n, start=seed)
    params = [
        sample_params(s, size=size, frames=frames, ef_range=ef_range, renderers=renderers, **overrides) for s in seeds
    ]
    out = OutputDir(out_dir, overwrite=overwrite)
    rows = []
    disable = None if progress_bar is None else not progress_bar
    for k, p in enumerate(progress(params, desc=f"phantom {layout}", disable=disable)):
        loop = simulate(p)
        if layout == "dicom":
            rows.append(write_dicom_loop(out, f"phantom_{p.seed:07d}", loop, split, ddf=ddf))
        elif layout in ("camus", "camus2019"):
            rows.append(write_camus_patient(out, seed + k + 1, loop, split, "2023" if layout == "camus" else "2019"))
        else:
            rows.append(write_echonet_video(out, loop, split))
    if layout == "echonet":
        write_echonet_tables(out, rows)
    if layout == "camus":
        write_camus_split(out, rows)
    write_manifest(out, rows)
    return rows
