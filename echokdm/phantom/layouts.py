"""Write phantom loops as DICOM / CAMUS / EchoNet-Dynamic folders, and read CAMUS and EchoNet-Dynamic
folders (the phantom's or the real data sets) as MONAI dataset dictionaries.

Every layout is documented in ``data_specs/layouts.md``. Writers go through an
:class:`~echokdm.outputs.OutputDir` (atomic files) and return one ``manifest.csv`` row per loop.
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
from echokdm.outputs import OutputDir
from echokdm.phantom.simulate import PhantomLoop

LAYOUTS = ("dicom", "camus", "echonet")
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


def _row(loop: PhantomLoop, name: str, path: str, layout: str, split: str) -> dict[str, Any]:
    p = loop.params
    return {
        "name": name, "path": path, "layout": layout, "split": split, "seed": p["seed"],
        "n_frames": loop.frames.shape[0], "height": loop.frames.shape[1], "width": loop.frames.shape[2],
        "spacing_mm": round(loop.spacing_mm[0], 6), "frame_time_ms": round(loop.frame_time_ms, 4),
        "heart_rate_bpm": p["heart_rate_bpm"], "ed": " ".join(map(str, loop.ed)), "es": " ".join(map(str, loop.es)),
        "ef": round(loop.ef, 3), "edv_ml": round(loop.edv, 3), "esv_ml": round(loop.esv, 3), "target_ef": p["target_ef"],
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


def write_camus_patient(out: OutputDir, number: int, loop: PhantomLoop, split: str) -> dict[str, Any]:
    """``patientNNNN/`` with the 4CH ED/ES images and ``_gt`` masks, the ED->ES ``_half_sequence`` and its
    ``_gt``, ``Info_4CH.cfg`` and ``patientNNNN_4CH_phantom.json``. Masks keep CAMUS labels 0-3 only.

    Returns:
        The manifest row.
    """
    pid = f"patient{number:04d}"
    ed, es = loop.ed[0], loop.es[0]
    frames = to_uint8(loop.frames[ed : es + 1])
    labels = np.where(loop.labels[ed : es + 1] <= 3, loop.labels[ed : es + 1], 0).astype(np.uint8)
    base = f"{pid}/{pid}_4CH"
    write_nifti(out, f"{base}_ED.nii.gz", frames[0], loop.spacing_mm)
    write_nifti(out, f"{base}_ED_gt.nii.gz", labels[0], loop.spacing_mm)
    write_nifti(out, f"{base}_ES.nii.gz", frames[-1], loop.spacing_mm)
    write_nifti(out, f"{base}_ES_gt.nii.gz", labels[-1], loop.spacing_mm)
    write_nifti(out, f"{base}_half_sequence.nii.gz", frames, loop.spacing_mm)
    write_nifti(out, f"{base}_half_sequence_gt.nii.gz", labels, loop.spacing_mm)
    p = loop.params
    cfg = {
        "ED": 1, "ES": len(frames), "NbFrame": len(frames), "Sex": p["sex"], "Age": p["age"],
        "ImageQuality": camus_quality(p), "EF": round(loop.ef, 2), "FrameRate": round(1000.0 / loop.frame_time_ms, 2),
        "LVedv": round(loop.edv, 2), "LVesv": round(loop.esv, 2),
    }
    out.write_text(f"{pid}/Info_4CH.cfg", "".join(f"{k}: {v}\n" for k, v in cfg.items()))
    out.write_json(f"{base}_phantom.json", _sidecar(loop))
    return _row(loop, pid, f"{base}_half_sequence.nii.gz", "camus", split)


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


# ---- reading ---------------------------------------------------------------------------------------------
def read_camus_cfg(path: str | os.PathLike) -> dict[str, Any]:
    """``Info_2CH.cfg`` / ``Info_4CH.cfg`` as a dict (numbers converted)."""
    out: dict[str, Any] = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        try:
            num = float(value)
            out[key] = int(num) if num.is_integer() and "." not in value else num
        except ValueError:
            out[key] = value
    return out


def camus_datalist(root: str | os.PathLike, view: str = "4CH") -> list[dict[str, Any]]:
    """One dict per ``patientNNNN`` folder of a CAMUS-layout root (real CAMUS or phantom).

    Keys: ``image`` / ``label`` (half-sequence and its ``_gt`` paths), ``image_ed``, ``label_ed``,
    ``image_es``, ``label_es``, ``ed`` / ``es`` (0-based indices into the half sequence), ``ef``, ``edv``,
    ``esv``, ``frame_time_ms`` (None if the cfg has no FrameRate), ``quality``, ``patient``, ``view``.

    Raises:
        InputError: no patient folder, or a patient without the files of ``view``.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    patients = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("patient"))
    if not patients:
        raise InputError(f"{root}: no patientNNNN folders (CAMUS layout)")
    items = []
    for pdir in patients:
        pid = pdir.name
        cfg_path = pdir / f"Info_{view}.cfg"
        base = pdir / f"{pid}_{view}"
        need = [cfg_path] + [Path(f"{base}_{s}.nii.gz") for s in ("half_sequence", "half_sequence_gt")]
        missing = [p.name for p in need if not p.exists()]
        if missing:
            raise InputError(f"{pdir}: missing {', '.join(missing)}")
        cfg = read_camus_cfg(cfg_path)
        n = int(cfg.get("NbFrame", 0))
        rate = cfg.get("FrameRate")
        items.append({
            "image": f"{base}_half_sequence.nii.gz", "label": f"{base}_half_sequence_gt.nii.gz",
            "image_ed": f"{base}_ED.nii.gz", "label_ed": f"{base}_ED_gt.nii.gz",
            "image_es": f"{base}_ES.nii.gz", "label_es": f"{base}_ES_gt.nii.gz",
            "ed": int(cfg["ED"]) - 1, "es": int(cfg["ES"]) - 1, "n_frames": n,
            "ef": cfg.get("EF"), "edv": cfg.get("LVedv"), "esv": cfg.get("LVesv"),
            "frame_time_ms": 1000.0 / float(rate) if rate else None, "quality": cfg.get("ImageQuality"),
            "patient": pid, "view": view,
        })
    return items


def load_camus_item(item: dict[str, Any]) -> dict[str, Any]:
    """Load a :func:`camus_datalist` entry: ``image`` becomes a MetaTensor (1, T, H, W) in [0, 1],
    ``label`` a (T, H, W) uint8 array, and ``spacing`` the (dy, dx) of the image header."""
    from echokdm.io import load_cine, read_segmentation

    out = dict(item)
    img = load_cine(item["image"], blank_outside_sector=False)
    out["image"] = img
    out["label"] = read_segmentation(item["label"])
    out["spacing"] = tuple(img.meta.get("spacing_mm") or (None, None))
    if out["frame_time_ms"] is not None:
        img.meta["frame_time_ms"] = out["frame_time_ms"]
    return out


def echonet_datalist(root: str | os.PathLike, split: str | None = None) -> list[dict[str, Any]]:
    """One dict per video listed in an EchoNet-Dynamic ``FileList.csv`` (real or phantom).

    Keys: ``image`` (AVI path), ``filename``, ``split``, ``ef``, ``edv``, ``esv``, ``fps``,
    ``frame_time_ms``, ``n_frames``, and from ``VolumeTracings.csv``: ``ed`` / ``es`` (the traced frames
    with the larger / smaller traced area) and ``trace_ed`` / ``trace_es`` ((21, 4) X1, Y1, X2, Y2).

    Args:
        root: folder with ``FileList.csv``, ``VolumeTracings.csv`` and ``Videos/``.
        split: keep only ``TRAIN`` / ``VAL`` / ``TEST`` (case-insensitive) rows.

    Raises:
        InputError: missing tables, videos or tracings.
    """
    import pandas as pd

    root = Path(root)
    for name in ("FileList.csv", "VolumeTracings.csv"):
        if not (root / name).exists():
            raise InputError(f"{root}: no {name} (EchoNet-Dynamic layout)")
    fl = pd.read_csv(root / "FileList.csv")
    vt = pd.read_csv(root / "VolumeTracings.csv")
    vt["key"] = vt["FileName"].map(lambda s: os.path.splitext(str(s))[0])
    traces = {k: g for k, g in vt.groupby("key", sort=False)}
    items = []
    for r in fl.itertuples(index=False):
        key = os.path.splitext(str(r.FileName))[0]
        if split is not None and str(r.Split).upper() != split.upper():
            continue
        video = root / "Videos" / f"{key}.avi"
        if not video.exists():
            raise InputError(f"{video}: listed in FileList.csv but missing")
        if key not in traces:
            raise InputError(f"{root / 'VolumeTracings.csv'}: no tracings for {key}")
        groups = traces[key].groupby("Frame", sort=False)
        per_frame = {int(f): g[["X1", "Y1", "X2", "Y2"]].to_numpy(np.float64) for f, g in groups}
        if len(per_frame) < 2:
            raise InputError(f"{root / 'VolumeTracings.csv'}: {key} has {len(per_frame)} traced frame(s); expected 2")
        by_area = sorted(per_frame, key=lambda f: _trace_area(per_frame[f]))
        es, ed = by_area[0], by_area[-1]
        fps = float(r.FPS)
        items.append({
            "image": str(video), "filename": key, "split": str(r.Split), "ef": float(r.EF), "edv": float(r.EDV),
            "esv": float(r.ESV), "fps": fps, "frame_time_ms": 1000.0 / fps if fps > 0 else None,
            "n_frames": int(r.NumberOfFrames), "ed": ed, "es": es,
            "trace_ed": per_frame[ed], "trace_es": per_frame[es],
        })
    return items


def _trace_area(trace: np.ndarray) -> float:
    x = np.concatenate([trace[1:, 0], trace[1:, 2][::-1]])
    y = np.concatenate([trace[1:, 1], trace[1:, 3][::-1]])
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def trace_mask(trace: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 mask of an EchoNet tracing (the polygon of the chords' ends, as EchoNet does)."""
    from skimage.draw import polygon

    x = np.concatenate([trace[1:, 0], trace[1:, 2][::-1]])
    y = np.concatenate([trace[1:, 1], trace[1:, 3][::-1]])
    rr, cc = polygon(np.rint(y).astype(int), np.rint(x).astype(int), shape)
    mask = np.zeros(shape, np.uint8)
    mask[rr, cc] = 1
    return mask


def load_echonet_item(item: dict[str, Any]) -> dict[str, Any]:
    """Load an :func:`echonet_datalist` entry: ``image`` becomes a MetaTensor (1, T, H, W) in [0, 1]
    (frame time from FileList FPS), ``label_ed`` / ``label_es`` (H, W) uint8 LV masks of the tracings."""
    from echokdm.io import load_cine

    out = dict(item)
    img = load_cine(item["image"], blank_outside_sector=False)
    if item["frame_time_ms"]:
        img.meta["frame_time_ms"] = item["frame_time_ms"]
    shape = tuple(img.shape[-2:])
    out["image"] = img
    out["label_ed"] = trace_mask(item["trace_ed"], shape)
    out["label_es"] = trace_mask(item["trace_es"], shape)
    return out


def _dataset(items: list[dict[str, Any]], loader: Callable, transform: Callable | None):
    from monai.data import Dataset
    from monai.transforms import Compose

    return Dataset(items, Compose([loader] + ([transform] if transform is not None else [])))


def camus_dataset(root: str | os.PathLike, view: str = "4CH", transform: Callable | None = None):
    """A ``monai.data.Dataset`` over a CAMUS-layout folder; items as :func:`load_camus_item` then ``transform``."""
    return _dataset(camus_datalist(root, view), load_camus_item, transform)


def echonet_dataset(root: str | os.PathLike, split: str | None = None, transform: Callable | None = None):
    """A ``monai.data.Dataset`` over an EchoNet-Dynamic folder; items as :func:`load_echonet_item` then ``transform``."""
    return _dataset(echonet_datalist(root, split), load_echonet_item, transform)


def manifest_rows(root: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a phantom folder's ``manifest.csv``."""
    path = Path(root) / "manifest.csv"
    if not path.exists():
        raise InputError(f"{root}: no manifest.csv (not a phantom folder)")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


__all__ = [
    "LAYOUTS", "camus_datalist", "camus_dataset", "echonet_datalist", "echonet_dataset", "generate", "layout_overrides",
    "load_camus_item", "load_echonet_item", "manifest_rows", "read_camus_cfg", "trace_mask", "volume_tracing",
    "write_camus_patient", "write_dicom_loop", "write_echonet_tables", "write_echonet_video", "write_manifest",
    "write_nifti",
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
    ddf: bool = True,
    overwrite: bool = False,
    progress_bar: bool | None = None,
) -> list[dict[str, Any]]:
    """Simulate ``n`` loops and write them in ``layout`` with a ``manifest.csv``.

    Every parameter is checked (all loops are sampled) before anything is written.

    Args:
        out_dir: output folder (created; a non-empty one only with ``overwrite`` and if echokdm made it).
        n: number of loops (>= 1).
        layout: ``dicom``, ``camus`` or ``echonet``.
        seed: first seed inside the split's seed block (see :func:`echokdm.phantom.split_seeds`).
        split: ``train``, ``val`` or ``test``.
        size: image side (default 256; EchoNet is always 112).
        frames: frames per loop (default: 30-60 per beat).
        ef_range: (min, max) target EF in percent, within 5-90 (default 15-80).
        ddf: write the displacement fields (DICOM layout).
        overwrite: replace an existing echokdm folder.
        progress_bar: force the progress bar on/off (default: on a terminal).

    Returns:
        The manifest rows.

    Raises:
        InputError: a bad parameter (nothing is written).
        OutputError: the output folder cannot be used.
    """
    from echokdm.phantom.params import sample_params, split_seeds
    from echokdm.phantom.simulate import simulate
    from echokdm.progress import progress

    overrides = layout_overrides(layout)
    if layout == "echonet" and size not in (None, ECHONET_SIZE):
        raise InputError(f"EchoNet-Dynamic videos are {ECHONET_SIZE}x{ECHONET_SIZE}; drop --size or use {ECHONET_SIZE}")
    seeds = split_seeds(split, n, start=seed)
    params = [sample_params(s, size=size, frames=frames, ef_range=ef_range, **overrides) for s in seeds]
    out = OutputDir(out_dir, overwrite=overwrite)
    rows = []
    disable = None if progress_bar is None else not progress_bar
    for k, p in enumerate(progress(params, desc=f"phantom {layout}", disable=disable)):
        loop = simulate(p)
        if layout == "dicom":
            rows.append(write_dicom_loop(out, f"phantom_{p.seed:07d}", loop, split, ddf=ddf))
        elif layout == "camus":
            rows.append(write_camus_patient(out, seed + k + 1, loop, split))
        else:
            rows.append(write_echonet_video(out, loop, split))
    if layout == "echonet":
        write_echonet_tables(out, rows)
    write_manifest(out, rows)
    return rows
