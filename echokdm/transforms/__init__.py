"""MONAI-style transforms (array + dictionary versions); each topic lives in its own submodule."""

from echokdm.transforms.intensity import (
    RandHaze,
    RandHazed,
    RandMitralLeaflets,
    RandMitralLeafletsd,
    RandOpenValve,
    RandOpenValved,
    RandShadowBands,
    RandShadowBandsd,
    RandSpeckle,
    RandSpeckled,
    RandTissueContrast,
    RandTissueContrastd,
)
from echokdm.transforms.keypoints import (
    ApplyTransformToKeypoints,
    ApplyTransformToKeypointsd,
    ExtractKeypoints,
    ExtractKeypointsd,
    KeypointsToMask,
    KeypointsToMaskd,
)
from echokdm.transforms.load import LoadCineLoop, LoadCineLoopd

__all__ = [
    "ApplyTransformToKeypoints",
    "ApplyTransformToKeypointsd",
    "ExtractKeypoints",
    "ExtractKeypointsd",
    "KeypointsToMask",
    "KeypointsToMaskd",
    "LoadCineLoop",
    "LoadCineLoopd",
    "RandHaze",
    "RandHazed",
    "RandMitralLeaflets",
    "RandMitralLeafletsd",
    "RandOpenValve",
    "RandOpenValved",
    "RandShadowBands",
    "RandShadowBandsd",
    "RandSpeckle",
    "RandSpeckled",
    "RandTissueContrast",
    "RandTissueContrastd",
]
