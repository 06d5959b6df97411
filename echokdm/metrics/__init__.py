"""Measurements: of the left ventricle from contour keypoints, and of predicted frames against real ones.

- :mod:`~echokdm.metrics.clinical`: area, long axis, volumes (area-length, Simpson), EF, GLS of a frame or a
  loop; the EF of a prediction, measured on the segmentations of its source and its last frame.
- :mod:`~echokdm.metrics.agreement`: Bland-Altman agreement and EF consistency.
- :mod:`~echokdm.metrics.images`: PSNR and SSIM inside the sector, LV cavity Dice and HD95.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from echokdm.lazy import lazy_exports

# imported here (light): the function ``agreement`` shares its name with its submodule
from echokdm.metrics.agreement import Agreement, aggregate_ef_consistency, agreement, ef_consistency

#: exported name -> module under echokdm.metrics; imported on first use (PEP 562), so that the clinical measurements
#: load neither torch nor MONAI (only the image scores need them)
_EXPORTS = {
    "N_DISKS": "clinical",
    "FrameMeasurements": "clinical",
    "LoopMetrics": "clinical",
    "PredictionEF": "clinical",
    "Units": "clinical",
    "biplane_ef": "clinical",
    "biplane_simpson_volume": "clinical",
    "ef_between": "clinical",
    "ef_from_keypoints": "clinical",
    "ejection_fraction": "clinical",
    "global_longitudinal_strain": "clinical",
    "measure_frame": "clinical",
    "measure_loop": "clinical",
    "prediction_ef": "clinical",
    "PSNR_CAP": "images",
    "SSIM_KERNEL": "images",
    "SSIM_SIGMA": "images",
    "image_scores": "images",
    "lv_overlap": "images",
    "psnr_in_sector": "images",
    "ssim_in_sector": "images",
}

if TYPE_CHECKING:
    from echokdm.metrics.clinical import (
        N_DISKS,
        FrameMeasurements,
        LoopMetrics,
        PredictionEF,
        Units,
        biplane_ef,
        biplane_simpson_volume,
        ef_between,
        ef_from_keypoints,
        ejection_fraction,
        global_longitudinal_strain,
        measure_frame,
        measure_loop,
        prediction_ef,
    )
    from echokdm.metrics.images import (
        PSNR_CAP,
        SSIM_KERNEL,
        SSIM_SIGMA,
        image_scores,
        lv_overlap,
        psnr_in_sector,
        ssim_in_sector,
    )

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = [
    "biplane_ef",
    "N_DISKS",
    "PSNR_CAP",
    "SSIM_KERNEL",
    "SSIM_SIGMA",
    "Agreement",
    "FrameMeasurements",
    "LoopMetrics",
    "PredictionEF",
    "Units",
    "aggregate_ef_consistency",
    "agreement",
    "biplane_simpson_volume",
    "ef_between",
    "ef_consistency",
    "ef_from_keypoints",
    "ejection_fraction",
    "global_longitudinal_strain",
    "image_scores",
    "lv_overlap",
    "measure_frame",
    "measure_loop",
    "prediction_ef",
    "psnr_in_sector",
    "ssim_in_sector",
]
