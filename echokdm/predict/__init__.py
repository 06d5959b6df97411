"""What ``echokdm predict`` does: from a cine loop to predicted frames, their flow, segmentation and report.

Stages (each timed, see :attr:`Prediction.timings`):

1. ``load`` (:func:`read_input`, before any model loads): the loop, read once with its DICOM header and sha256
   (at least two frames), and the files of the options (``--seg``, ``--keypoints``), all checked (given labels
   must show a beat).
2. ``segment``: CAMUS labels of every frame, from ``--seg`` or the built-in segmenter.
3. ``keypoints`` (:func:`find_study`): ED/ES from the LV area curve (a beat must be visible), the source frame (ED
   by default, ES for ``--phase ed``) and 40 keypoints on it; the target keypoints come from the observed target
   frame (``--phase``), the keypoint motion prior on the loop's spacing (``--target-ef``) or a keypoint file
   (``--keypoints``).
4. ``prepare`` / ``k2f`` / ``f2i`` / ``transfer`` (:func:`echokdm.grid.kdm_on_source_grid`): the sector is mapped
   onto the models' square working grid; one K2F run gives the flow; F2I renders a frame for every alpha
   (``k / N`` for ``--frames N``); back to the source grid at full resolution by residual transfer.
5. ``segment_prediction`` / ``measure``: the built-in segmenter labels the source and every predicted frame on
   their own (no temporal smoothing between them); EF of the prediction is measured between the two, so the
   segmenter's bias cancels (:func:`echokdm.metrics.prediction_ef`); image metrics against the real target frame
   when there is one (:func:`echokdm.metrics.image_scores`).

Files written by :func:`predict_study` into the output folder (see :data:`FILES`): the predicted frame(s) as
a DICOM cine, one PNG per frame, a GIF (source then predictions), ``comparison.png``, the flow as a picture,
``.npy`` and ``.nii.gz``, the segmentation of the prediction (``.nii.gz``), the keypoints used
(``keypoints.json``: edit and pass back with ``--keypoints``), for a DICOM input a DICOM SEG of the predicted frames
and a DICOM SR of the EFs (:mod:`~echokdm.predict.dicom_outputs`), and ``report.json`` (schema
``data_specs/predict_report.schema.json``) with its one-row flat copy ``report.csv``.

Modules: :mod:`~echokdm.predict.options`, :mod:`~echokdm.predict.study`, :mod:`~echokdm.predict.predictor`,
:mod:`~echokdm.predict.report`, :mod:`~echokdm.predict.figures`, :mod:`~echokdm.predict.dicom_outputs`,
:mod:`~echokdm.predict.files`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from echokdm.lazy import lazy_exports

#: exported name -> module under echokdm.predict; imported on first use (PEP 562), so that reading and checking
#: the input (``predict_study`` first does that) loads neither torch nor a model
_EXPORTS = {
    "comparison_figure": "figures",
    "flow_figure": "figures",
    "FILES": "files",
    "predict_study": "files",
    "save_prediction": "files",
    "write_prediction": "files",
    "PredictOptions": "options",
    "PredictWeights": "options",
    "KDMPredictor": "predictor",
    "StageClock": "predictor",
    "Prediction": "report",
    "build_report": "report",
    "report_csv": "report",
    "software_versions": "report",
    "Study": "study",
    "StudyInput": "study",
    "find_study": "study",
    "read_input": "study",
}

if TYPE_CHECKING:
    from echokdm.predict.figures import comparison_figure, flow_figure
    from echokdm.predict.files import FILES, predict_study, save_prediction, write_prediction
    from echokdm.predict.options import PredictOptions, PredictWeights
    from echokdm.predict.predictor import KDMPredictor, StageClock
    from echokdm.predict.report import Prediction, build_report, report_csv, software_versions
    from echokdm.predict.study import Study, StudyInput, find_study, read_input

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "FILES",
    "KDMPredictor",
    "PredictOptions",
    "PredictWeights",
    "Prediction",
    "StageClock",
    "Study",
    "StudyInput",
    "build_report",
    "comparison_figure",
    "find_study",
    "flow_figure",
    "predict_study",
    "read_input",
    "report_csv",
    "save_prediction",
    "software_versions",
    "write_prediction",
]
