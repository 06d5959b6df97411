"""Reading and writing cine loops: DICOM (any pydicom-decodable encoding), NIfTI/MHD, AVI, PNG/JPEG frames."""

from echokdm.io.calibration import Calibration, UltrasoundRegion, calibrate, ultrasound_regions
from echokdm.io.dicom import frame_timing, read_dicom_cine, read_dicom_header
from echokdm.io.info import cine_info
from echokdm.io.load import CineFile, load_cine, load_cine_file, loop_spacing, read_cine, require_loop
from echokdm.io.nifti import write_flow_sequence, write_label_sequence
from echokdm.io.sector import mask_box, sector_mask
from echokdm.io.segmentation import read_segmentation
from echokdm.io.write import write_cine_dicom

__all__ = [
    "CineFile",
    "Calibration",
    "UltrasoundRegion",
    "calibrate",
    "cine_info",
    "frame_timing",
    "load_cine",
    "load_cine_file",
    "loop_spacing",
    "mask_box",
    "read_cine",
    "read_dicom_cine",
    "read_dicom_header",
    "read_segmentation",
    "require_loop",
    "sector_mask",
    "ultrasound_regions",
    "write_cine_dicom",
    "write_flow_sequence",
    "write_label_sequence",
]
