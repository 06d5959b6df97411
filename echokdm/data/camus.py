"""CAMUS reader: a CAMUS folder (either public release, or ``echokdm phantom --layout camus|camus2019``) as MONAI
dataset dictionaries.

Both releases hold ``patientNNNN/`` folders with ``Info_2CH.cfg`` / ``Info_4CH.cfg`` and, per view, the ED and ES
frames with their ``_gt`` masks (0 background, 1 LV cavity, 2 LV myocardium, 3 LA) and the ED->ES sequence:

- 2023 (``database_nifti/``): ``patientNNNN_4CH_ED.nii.gz``, ``_4CH_ED_gt.nii.gz``, ``_4CH_ES.nii.gz``,
  ``_4CH_ES_gt.nii.gz``, ``_4CH_half_sequence.nii.gz`` and ``_4CH_half_sequence_gt.nii.gz`` (every frame labelled);
  the official split in ``database_split/subgroup_{training,validation,testing}.txt`` next to the patients'
  folder;
- 2019 (``training/``, ``testing/``): the same as ``.mhd`` + ``.raw``, with ``_4CH_sequence.mhd`` (no labels
  between ED and ES) instead of the half sequence; ``LVef`` instead of ``EF`` in the cfg.

Folders without an official split are split by :func:`echokdm.data.stable_split`. The layouts are described in
``data_specs/layouts.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai.data import Dataset
from monai.transforms import Compose

from echokdm.data.splits import SPLITS, check_split, stable_split
from echokdm.errors import InputError
from echokdm.io import load_cine, loop_spacing, read_segmentation

VIEWS = ("2CH", "4CH")
#: release -> (suffix, name of the ED->ES sequence)
RELEASES = {"2023": (".nii.gz", "half_sequence"), "2019": (".mhd", "sequence")}
#: official split file names (2023 release) by echokdm split name
SPLIT_FILES = {"train": "subgroup_training.txt", "val": "subgroup_validation.txt", "test": "subgroup_testing.txt"}


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


def patient_folders(root: str | os.PathLike) -> list[Path]:
    """The ``patientNNNN`` folders of a CAMUS root: ``root`` itself, or its ``database_nifti/`` (2023) or
    ``training/`` (2019) sub-folder.

    Raises:
        InputError: not a folder, or no patient folders there.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    for folder in (root, root / "database_nifti", root / "training"):
        if folder.is_dir():
            patients = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("patient"))
            if patients:
                return patients
    raise InputError(f"{root}: no patientNNNN folders (CAMUS layout)")


def is_camus_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a CAMUS root (see :func:`patient_folders`)."""
    try:
        return bool(patient_folders(path))
    except InputError:
        return False


def official_split(patients_dir: Path) -> dict[str, str] | None:
    """patient -> echokdm split from the 2023 release's ``database_split/`` (beside or inside the patients'
    folder), or None when there is none."""
    for folder in (patients_dir / "database_split", patients_dir.parent / "database_split"):
        if folder.is_dir():
            out = {}
            for split, name in SPLIT_FILES.items():
                path = folder / name
                if path.is_file():
                    out.update({line.strip(): split for line in path.read_text().splitlines() if line.strip()})
            return out
    return None


def camus_datalist(root: str | os.PathLike, view: str = "4CH", split: str = "all") -> list[dict[str, Any]]:
    """One dict per ``patientNNNN`` folder of a CAMUS root (either release, or the phantom's layouts).

    Keys: ``image`` / ``label`` (the ED->ES sequence and its ``_gt``; ``label`` is None in the 2019 release),
    ``image_ed``, ``label_ed``, ``image_es``, ``label_es``, ``ed`` / ``es`` (0-based indices into the sequence),
    ``n_frames``, ``ef`` (``EF`` or ``LVef``), ``edv``, ``esv``, ``frame_time_ms`` (None if the cfg has no
    FrameRate), ``quality``, ``patient``, ``view``, ``release`` (``"2023"`` or ``"2019"``), ``split``.

    Args:
        root: the patients' folder, or the release folder above ``database_nifti/`` / ``training/``.
        view: ``4CH`` or ``2CH``.
        split: ``train``, ``val``, ``test`` (official split, else :func:`stable_split` of the patient name) or
            ``all``.

    Raises:
        InputError: no patient folder, an unknown view or split, or a patient without the files of ``view``.
    """
    if view not in VIEWS:
        raise InputError(f"CAMUS view must be one of {', '.join(VIEWS)}, got {view!r}")
    check_split(split)
    patients = patient_folders(root)
    splits = official_split(patients[0].parent)
    items = []
    for pdir in patients:
        pid = pdir.name
        where = splits.get(pid, "unlisted") if splits is not None else stable_split(pid)
        if split != "all" and where != split:
            continue
        cfg_path = pdir / f"Info_{view}.cfg"
        base = pdir / f"{pid}_{view}"
        release = next((r for r, (suffix, _) in RELEASES.items() if Path(f"{base}_ED{suffix}").exists()), "2023")
        suffix, seq = RELEASES[release]
        files = {key: Path(f"{base}_{name}{suffix}") for key, name in (
            ("image", seq), ("label", f"{seq}_gt"), ("image_ed", "ED"), ("label_ed", "ED_gt"),
            ("image_es", "ES"), ("label_es", "ES_gt"))}  # fmt: skip
        optional = {"label"} if release == "2019" else set()
        missing = [p.name for k, p in [("cfg", cfg_path), *files.items()] if k not in optional and not p.exists()]
        if missing:
            raise InputError(f"{pdir}: missing {', '.join(missing)}")
        cfg = read_camus_cfg(cfg_path)
        rate = cfg.get("FrameRate")
        items.append({
            **{k: str(p) if p.exists() else None for k, p in files.items()},
            "ed": int(cfg["ED"]) - 1, "es": int(cfg["ES"]) - 1, "n_frames": int(cfg.get("NbFrame", 0)),
            "ef": cfg.get("EF", cfg.get("LVef")), "edv": cfg.get("LVedv"), "esv": cfg.get("LVesv"),
            "frame_time_ms": 1000.0 / float(rate) if rate else None, "quality": cfg.get("ImageQuality"),
            "patient": pid, "view": view, "release": release, "split": where,
        })
    return items


def load_camus_item(item: dict[str, Any]) -> dict[str, Any]:
    """Load a :func:`camus_datalist` entry: ``image`` becomes a MetaTensor (1, T, H, W) in [0, 1]; ``label`` a
    (T, H, W) uint8 array (None in the 2019 release); ``label_ed`` / ``label_es`` (H, W) uint8; ``spacing``
    the (dy, dx) of the image header."""
    out = dict(item)
    img = load_cine(item["image"], blank_outside_sector=False)
    out["image"] = img
    out["label"] = read_segmentation(item["label"]) if item["label"] else None
    out["label_ed"] = read_segmentation(item["label_ed"])
    out["label_es"] = read_segmentation(item["label_es"])
    out["spacing"] = loop_spacing(img) or (None, None)
    if out["frame_time_ms"] is not None:
        img.meta["frame_time_ms"] = out["frame_time_ms"]
    return out


def camus_dataset(
    root: str | os.PathLike, view: str = "4CH", transform: Callable | None = None, split: str = "all"
) -> Dataset:
    """A ``monai.data.Dataset`` over a CAMUS folder; items as :func:`load_camus_item` then ``transform``."""
    steps = [load_camus_item] + ([transform] if transform is not None else [])
    return Dataset(camus_datalist(root, view, split), Compose(steps))


__all__ = [
    "RELEASES", "SPLITS", "VIEWS", "camus_datalist", "camus_dataset", "is_camus_folder", "load_camus_item",
    "patient_folders",
    "read_camus_cfg",
]
