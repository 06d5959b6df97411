"""Pixel spacing from the DICOM ultrasound region calibration (Sequence of Ultrasound Regions).

The 2D tissue region gives Physical Delta X/Y in cm per pixel for the pixel matrix the scanner wrote.
When the region box does not fit the matrix the image was resized (or cropped) after acquisition and
the calibration belongs to another matrix: the scale is inferred when one common factor puts the box
around the moving image content; otherwise the spacing is reported as unreliable (None + warning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from pydicom.dataset import Dataset

from echokdm.io.sector import Box

#: RegionSpatialFormat 1 = 2D; PhysicalUnits 3 = cm
SPATIAL_2D = 1
UNITS_CM = 3
#: resize factors tried when a region box does not fit the matrix (original = factor x stored)
RESIZE_FACTORS = sorted({Fraction(n, d) for n in range(1, 9) for d in range(1, 5) if 1 < n / d <= 8})
#: two regions agree when their deltas differ by less than this fraction
AGREEMENT = 0.01
#: the moving content must fill at least this fraction of a rescaled box's height to confirm the scale
MIN_HEIGHT_FILL = 0.8
#: pixels the content may stick out of a rescaled box (interpolation blur)
BOX_SLACK = 3


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of (0018,6011) Sequence of Ultrasound Regions (box in inclusive pixels)."""

    box: Box
    spatial_format: int
    data_type: int
    units_x: int
    units_y: int
    delta_x: float
    delta_y: float

    @property
    def is_2d_cm(self) -> bool:
        """A 2D region calibrated in cm in both directions."""
        return (
            self.spatial_format == SPATIAL_2D
            and self.units_x == UNITS_CM
            and self.units_y == UNITS_CM
            and self.delta_x > 0
            and self.delta_y > 0
        )


@dataclass(frozen=True)
class Calibration:
    """Spacing found from the regions.

    Attributes:
        spacing_mm: (dy, dx) in mm on the stored pixel matrix, or None when unknown/unreliable.
        source: "ultrasound_region", "ultrasound_region_rescaled" or "unreliable".
        warning: why the calibration was corrected or not used, else None.
        box: the tissue region box on the stored matrix (x0, y0, x1, y1), or None.
        scale: the inferred resize factor (original / stored), 1.0 when the box fits.
    """

    spacing_mm: tuple[float, float] | None
    source: str
    warning: str | None
    box: Box | None
    scale: float


def ultrasound_regions(ds: Dataset) -> list[UltrasoundRegion]:
    """The regions of a dataset's (0018,6011) Sequence of Ultrasound Regions (empty when absent)."""
    regions = []
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        try:
            box = tuple(
                int(item[k].value)
                for k in ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")
            )
            regions.append(
                UltrasoundRegion(
                    box=box,  # type: ignore[arg-type]
                    spatial_format=int(item.get("RegionSpatialFormat", 0) or 0),
                    data_type=int(item.get("RegionDataType", 0) or 0),
                    units_x=int(item.get("PhysicalUnitsXDirection", 0) or 0),
                    units_y=int(item.get("PhysicalUnitsYDirection", 0) or 0),
                    delta_x=float(item.get("PhysicalDeltaX", 0) or 0),
                    delta_y=float(item.get("PhysicalDeltaY", 0) or 0),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # an incomplete item calibrates nothing
    return regions


def calibrate(regions: list[UltrasoundRegion], shape: tuple[int, int], content: Box | None) -> Calibration | None:
    """Spacing (dy, dx) in mm from the 2D cm regions, checked against the pixel matrix.

    Args:
        regions: from :func:`ultrasound_regions`.
        shape: (H, W) of the stored pixel matrix.
        content: bounding box (x0, y0, x1, y1) of the moving image content, used to confirm a resize
            factor; None when unknown.

    Returns:
        The calibration, or None when no region is a 2D region in cm.
    """
    tissue = [r for r in regions if r.is_2d_cm]
    if not tissue:
        return None
    first = tissue[0]
    for other in tissue[1:]:
        if not (_close(other.delta_x, first.delta_x) and _close(other.delta_y, first.delta_y)):
            return Calibration(
                None,
                "unreliable",
                f"ultrasound regions disagree on spacing ({_mm(first)} vs {_mm(other)} mm); spacing not used",
                None,
                1.0,
            )
    # the largest box: the tissue region that the others (e.g. colour-flow boxes) sit in
    region = max(tissue, key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]))
    h, w = shape
    x0, y0, x1, y1 = region.box
    dy, dx = mm_from_cm(region.delta_y), mm_from_cm(region.delta_x)
    # Max X1/Y1 are inclusive, but some writers store them one past the last pixel: allow that.
    if x1 <= w and y1 <= h:
        return Calibration((dy, dx), "ultrasound_region", None, (x0, y0, min(x1, w - 1), min(y1, h - 1)), 1.0)
    needed = max(x1 / w, y1 / h)
    for factor in RESIZE_FACTORS:
        if factor < needed:
            continue
        f = float(factor)
        box = (
            _shrink(x0, f, math.floor),
            _shrink(y0, f, math.floor),
            _shrink(x1, f, math.ceil),
            _shrink(y1, f, math.ceil),
        )
        box = (max(box[0], 0), max(box[1], 0), min(box[2], w - 1), min(box[3], h - 1))
        if content is not None and _confirms(content, box):
            return Calibration(
                (dy * f, dx * f),
                "ultrasound_region_rescaled",
                f"region box {region.box} does not fit the {w}x{h} matrix: calibration belongs to a "
                f"{round(w * f)}x{round(h * f)} matrix, spacing scaled by {f:g}",
                box,
                f,
            )
    return Calibration(
        None,
        "unreliable",
        f"region box {region.box} does not fit the {w}x{h} matrix (image resized or cropped after "
        f"acquisition) and no scale matches the image content; calibration {_mm(region)} mm not used",
        None,
        1.0,
    )


def mm_from_cm(cm: float) -> float:
    """cm -> mm, rounded to 15 significant digits so that a spacing written as ``mm / 10`` reads back exactly."""
    return float(f"{cm * 10.0:.15g}")


def _confirms(content: Box, box: Box) -> bool:
    """The content lies inside ``box`` (with slack) and fills most of its height."""
    cx0, cy0, cx1, cy1 = content
    bx0, by0, bx1, by1 = box
    inside = cx0 >= bx0 - BOX_SLACK and cy0 >= by0 - BOX_SLACK and cx1 <= bx1 + BOX_SLACK and cy1 <= by1 + BOX_SLACK
    return inside and (cy1 - cy0 + 1) >= MIN_HEIGHT_FILL * (by1 - by0 + 1)


def _shrink(coord: int, factor: float, rounding) -> int:
    """A pixel index of the original matrix on the matrix resized by 1/factor (pixel centres aligned)."""
    return int(rounding((coord + 0.5) / factor - 0.5))


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= AGREEMENT * max(abs(a), abs(b))


def _mm(region: UltrasoundRegion) -> str:
    return f"{mm_from_cm(region.delta_y):.4g} x {mm_from_cm(region.delta_x):.4g}"
