"""CAMUS labels, the label set every echokdm segmentation uses: 0 background, 1 LV cavity, 2 LV myocardium,
3 left atrium. The phantom labels other tissue above 3; CAMUS consumers see it as background."""

from __future__ import annotations

import numpy as np

#: CAMUS label values and names
LABELS = {0: "background", 1: "lv", 2: "myo", 3: "la"}


def camus_labels(labels: np.ndarray) -> np.ndarray:
    """Label maps of any shape with labels above 3 mapped to background.

    Args:
        labels: (..., H, W) integer labels.

    Returns:
        (..., H, W) uint8 CAMUS labels.
    """
    labels = np.asarray(labels)
    return np.where(labels <= 3, labels, 0).astype(np.uint8)
