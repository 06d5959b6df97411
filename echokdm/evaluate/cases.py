"""Evaluation cases: labelled cine loops brought to the working resolution.

A :class:`Case` is what every task is built from: the frames of one loop, the label maps of the frames
that have them, ED/ES indices, spacing, the sector mask and, for phantom loops, the exact displacement
from ED to every frame (the oracle's input).

Torch and the readers are imported where a case is loaded, so that naming the cases checks ``--data`` fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from echokdm.errors import InputError
from echokdm.labels import camus_labels


@dataclass
class Case:
    """One labelled loop.

    Args:
        case_id: unique name of the case (a file-name-safe string).
        frames: (T, H, W) float32 in [0, 1].
        labels: frame index -> (H, W) uint8 CAMUS label map, for every frame that has one.
        ed: index of the end-diastolic frame.
        es: index of the end-systolic frame that follows it.
        spacing_mm: (dy, dx) in mm; None when the data carry no calibration.
        sector_mask: (H, W) bool, the imaged fan.
        ddf_from_ed: (T, 2, H, W) float32 exact pull displacement from ED to each frame, or None.
        info: descriptive values for the per-case table (true EF, depth, quality, source).
        walls_observed: whether the labels' LV wall of a target frame is to be taken as it is; False for labels of
            the built-in segmenter, whose walls of a second frame are unreliable on real loops: a target's wall then
            moves with its endocardium from the source's, as ``echokdm predict`` moves it.
    """

    case_id: str
    frames: np.ndarray
    labels: dict[int, np.ndarray]
    ed: int
    es: int
    spacing_mm: tuple[float, float] | None
    sector_mask: np.ndarray
    ddf_from_ed: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    walls_observed: bool = True

    def __post_init__(self) -> None:
        t = self.frames.shape[0]
        for name, idx in (("ED", self.ed), ("ES", self.es)):
            if not 0 <= idx < t:
                raise InputError(f"case {self.case_id}: {name} frame {idx} is outside the loop of {t} frames")
            if idx not in self.labels:
                raise InputError(f"case {self.case_id}: the {name} frame {idx} has no label map")


def resize_case(case: Case, size: int) -> Case:
    """Bring ``case`` to a ``size`` x ``size`` grid (frames bilinear with anti-aliasing, labels nearest).

    Spacing and displacement fields are rescaled with the grid; a case already at that size is returned
    unchanged.

    Args:
        case: the case.
        size: edge length of the working grid in pixels.

    Returns:
        The resized case.
    """
    h, w = case.frames.shape[-2:]
    if (h, w) == (size, size):
        return case
    import torch
    import torch.nn.functional as F

    fy, fx = size / h, size / w

    def img(a: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]
        return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[:, 0].numpy()

    def lab(a: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(a))[None, None].float()
        return F.interpolate(t, size=(size, size), mode="nearest-exact")[0, 0].numpy().astype(np.uint8)

    ddf = None
    if case.ddf_from_ed is not None:
        d = img(case.ddf_from_ed.reshape(-1, h, w)).reshape(-1, 2, size, size)
        ddf = (d * np.array([fy, fx], dtype=np.float32)[None, :, None, None]).astype(np.float32)
    spacing = None if case.spacing_mm is None else (case.spacing_mm[0] / fy, case.spacing_mm[1] / fx)
    return replace(
        case,
        frames=np.clip(img(case.frames), 0.0, 1.0),
        labels={k: lab(v) for k, v in case.labels.items()},
        spacing_mm=spacing,
        sector_mask=lab(case.sector_mask.astype(np.uint8)).astype(bool),
        ddf_from_ed=ddf,
    )


@dataclass(frozen=True)
class CaseRef:
    """A case by name, loaded only when it must be scored (so a resumed run skips the loading too)."""

    case_id: str
    load: Callable[[], Case]


def phantom_case(seed: int, size: int) -> Case:
    """The phantom loop of ``seed`` at ``size`` x ``size``, one beat long (the evaluation uses its first ED
    and the ES that follows, so further beats would only cost time).
    """
    from echokdm.phantom import sample_params, simulate

    loop = simulate(sample_params(seed, size=size, n_beats=1))
    ed = int(loop.ed[0])
    es = int(next(e for e in loop.es if e > ed))
    p = loop.params
    return Case(
        case_id=f"phantom{seed:07d}",
        frames=np.asarray(loop.frames, dtype=np.float32),
        labels={t: np.asarray(loop.labels[t], dtype=np.uint8) for t in range(len(loop.labels))},
        ed=ed,
        es=es,
        spacing_mm=tuple(float(s) for s in loop.spacing_mm),
        sector_mask=np.asarray(loop.sector_mask, dtype=bool),
        ddf_from_ed=np.asarray(loop.ddf_from_ed, dtype=np.float32),
        info={
            "source": "phantom",
            "seed": seed,
            "ef_phantom": round(float(loop.ef), 2),
            "depth_mm": p["depth_mm"],
            "haze": p["haze"],
            "dropout": p["dropout"],
        },
    )


def resolve_cases(data: str, size: int) -> list[CaseRef]:
    """The cases named by ``data``.

    Args:
        data: ``phantom-test`` or ``phantom-test:N`` (the first N loops of the phantom test split, default 50,
            generated on the fly) or a folder in CAMUS, EchoNet-Dynamic or ``echokdm phantom`` layout.
        size: edge of the working grid.

    Returns:
        Lazily loaded cases, in a fixed order.

    Raises:
        InputError: a malformed ``phantom-test:N``, or a folder that is missing or of no known layout.
    """
    if data == "phantom-test" or data.startswith("phantom-test:"):
        n_text = data.partition(":")[2] or "50"
        if not n_text.isdigit() or int(n_text) < 1:
            raise InputError(f"--data {data!r}: expected phantom-test:N with N a positive whole number")
        from echokdm.phantom import split_seeds

        return [CaseRef(f"phantom{s:07d}", partial(phantom_case, s, size)) for s in split_seeds("test", int(n_text))]
    return folder_cases(Path(data), size)


def folder_cases(path: Path, size: int) -> list[CaseRef]:
    """Cases of a data folder, brought to ``size`` x ``size``.

    A single cine file (DICOM, NIfTI, ...) is one case labelled by the built-in segmenter (:func:`_cine_case`).
    Layouts (``data_specs/layouts.md``): EchoNet-Dynamic (``FileList.csv``; ED/ES LV tracings only, no
    spacing), CAMUS (``patientNNNN/`` with the 4CH half sequence and its ``_gt``), and the DICOM layout of
    ``echokdm phantom`` (``manifest.csv``; exact displacements included, so the oracle can run).

    Raises:
        InputError: the folder is missing or holds no known layout.
    """
    if path.is_file():
        return [CaseRef(path.stem, partial(_resized, partial(_cine_case, path), size))]
    if not path.is_dir():
        raise InputError(
            f"--data {path}: no such file or folder; "
            "expected phantom-test[:N], one cine file or a CAMUS, EchoNet-Dynamic or echokdm phantom folder"
        )
    from echokdm.data.camus import camus_datalist
    from echokdm.data.echonet import echonet_datalist
    from echokdm.phantom.layouts import manifest_rows

    if (path / "FileList.csv").exists():
        refs = [CaseRef(item["filename"], partial(_echonet_case, item)) for item in echonet_datalist(path)]
    elif _camus_root(path):
        refs = [CaseRef(item["patient"], partial(_camus_case, item)) for item in camus_datalist(path)]
    elif (path / "manifest.csv").exists() and any(r["layout"] == "dicom" for r in manifest_rows(path)):
        rows = [r for r in manifest_rows(path) if r["layout"] == "dicom"]
        refs = [CaseRef(r["name"], partial(_dicom_case, path, r["name"])) for r in rows]
    else:
        raise InputError(
            f"--data {path}: not a data folder echokdm knows; expected EchoNet-Dynamic (FileList.csv), CAMUS "
            "(patientNNNN/) or an echokdm phantom DICOM folder (manifest.csv)"
        )
    return [CaseRef(r.case_id, partial(_resized, r.load, size)) for r in refs]


def _camus_root(path: Path) -> bool:
    from echokdm.data.camus import is_camus_folder

    return is_camus_folder(path)


def _resized(load: Callable[[], Case], size: int) -> Case:
    return resize_case(load(), size)


def _loop_case(case_id: str, img, labels: dict[int, np.ndarray], ed: int, es: int, spacing: bool = True, **kw) -> Case:
    """A case from a loaded loop (a ``load_cine`` MetaTensor (1, T, H, W) with its spacing and sector mask)."""
    from echokdm.io.load import loop_spacing

    sp = loop_spacing(img) if spacing else None
    return Case(
        case_id=case_id,
        frames=img[0].numpy(),
        labels={t: np.asarray(lab, dtype=np.uint8) for t, lab in labels.items()},
        ed=int(ed),
        es=int(es),
        spacing_mm=(float(sp[0]), float(sp[1])) if sp and None not in sp else None,
        sector_mask=np.asarray(kw.pop("sector_mask", img.meta["sector_mask"]), dtype=bool),
        **kw,
    )


def _camus_case(item: dict) -> Case:
    from echokdm.data.camus import load_camus_item

    d = load_camus_item(item)
    info = {"source": "camus", "ef_reported": item["ef"], "quality": item["quality"]}
    if d["label"] is not None:
        labels = dict(enumerate(d["label"]))
    else:  # 2019 release: ED and ES labelled only
        labels = {item["ed"]: d["label_ed"], item["es"]: d["label_es"]}
    return _loop_case(item["patient"], d["image"], labels, item["ed"], item["es"], info=info)


def _echonet_case(item: dict) -> Case:
    from echokdm.data.echonet import load_echonet_item

    d = load_echonet_item(item)
    labels = {int(item["ed"]): d["label_ed"], int(item["es"]): d["label_es"]}
    info = {"source": "echonet", "ef_reported": item["ef"]}
    return _loop_case(item["filename"], d["image"], labels, item["ed"], item["es"], spacing=False, info=info)


def _cine_case(path: Path) -> Case:
    """One cine loop: every frame labelled by the built-in segmenter, ED and ES of its first beat as ``echokdm
    predict`` finds them (so the scores are those of the frames predict compares)."""
    from echokdm.predict.study import find_study, read_input
    from echokdm.segmenter import BuiltinSegmenter

    inp = read_input(path)
    seg = BuiltinSegmenter()(inp.frames, sector_mask=inp.sector, spacing_mm=inp.spacing,
                             frame_time_ms=inp.meta.get("frame_time_ms"))
    labels = camus_labels(seg)
    study = find_study(inp, labels, lambda: None)
    return Case(case_id=path.stem, frames=inp.frames, labels=dict(enumerate(labels)), ed=study.source_frame,
                es=study.target_frame, spacing_mm=inp.spacing, sector_mask=inp.sector,
                info={"source": "cine", "labels": "built-in segmenter"}, walls_observed=False)


def _dicom_case(root: Path, name: str) -> Case:
    import json

    from echokdm.io import load_cine, read_segmentation

    side = json.loads((root / f"{name}.json").read_text())
    img = load_cine(root / side["files"]["dicom"], blank_outside_sector=False)
    labels = read_segmentation(root / side["files"]["label"])
    ddf, sector = None, img.meta["sector_mask"]
    if "ddf" in side["files"]:
        with np.load(root / side["files"]["ddf"]) as z:
            ddf, sector = z["ddf_from_ed"].astype(np.float32), z["sector_mask"].astype(bool)
    ed = int(side["ed"][0])
    es = next(e for e in side["es"] if e > ed)
    info = {"source": "phantom-dicom", "ef_phantom": round(float(side["ef"]), 2)}
    return _loop_case(name, img, dict(enumerate(labels)), ed, es, sector_mask=sector, ddf_from_ed=ddf, info=info)
