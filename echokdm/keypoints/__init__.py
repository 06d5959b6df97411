"""Contour keypoints of the left ventricle: extraction from label maps, the wall of cavity-only tracings, drawing
back to masks, files."""

from echokdm.keypoints.contour import endocardial_contour, keypoints_to_mask, spline_chain
from echokdm.keypoints.epicardium import epicardium_from, move_epicardium, myocardial_area
from echokdm.keypoints.extract import LEFT_ATRIUM, LV_CAVITY, LV_MYOCARDIUM, extract_keypoints
from echokdm.keypoints.files import KeypointTrack, load_keypoints, save_keypoints

__all__ = [
    "LEFT_ATRIUM",
    "LV_CAVITY",
    "LV_MYOCARDIUM",
    "KeypointTrack",
    "endocardial_contour",
    "epicardium_from",
    "extract_keypoints",
    "keypoints_to_mask",
    "load_keypoints",
    "move_epicardium",
    "myocardial_area",
    "save_keypoints",
    "spline_chain",
]
