"""Evaluation cases: labelled cine loops brought to the working resolution.

A :class:`Case` is what every task is built from: the frames of one loop, the label maps of the frames
that have them, ED/ES indices, spacing, the sector mask and, for phantom loops, the exact displacement
from ED to every frame (the oracle's input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from echokdm.errors import InputError, UnsupportedError


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
    """Cases of a CAMUS, EchoNet-Dynamic or ``echokdm phantom`` folder, brought to ``size`` x ``size``.

    Raises:
        InputError: the folder is missing or holds no known layout.
    """
    if not path.is_dir():
        raise InputError(f"--data {path}: no such folder; expected phantom-test[:N] or a CAMUS, EchoNet-Dynamic or echokdm phantom folder")
    try:
        from echokdm.phantom.layouts import open_dataset
    except ImportError:
        raise UnsupportedError(f"--data {path}: this echokdm cannot read data folders yet; use phantom-test[:N]") from None
    return [CaseRef(r.case_id, partial(_resized, r.load, size)) for r in open_dataset(path)]


def _resized(load: Callable[[], Case], size: int) -> Case:
    return resize_case(load(), size)
