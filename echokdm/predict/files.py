"""The output folder of ``echokdm predict``: every file of a prediction, the report last, all or nothing.

Torch, the models and the DICOM and figure writers are imported where they are used, so that a bad input or
output folder fails fast, before any of them loads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from echokdm.outputs import OutputDir
from echokdm.predict.options import PredictOptions, PredictWeights
from echokdm.predict.study import read_input
from echokdm.progress import note

if TYPE_CHECKING:
    import torch

    from echokdm.io.anonymize import Anonymizer
    from echokdm.predict.predictor import KDMPredictor
    from echokdm.predict.report import Prediction

FILES = {
    "dicom": "prediction.dcm",
    "frames": "frames",
    "gif": "sequence.gif",
    "comparison": "comparison.png",
    "flow_png": "flow.png",
    "flow_npy": "flow.npy",
    "flow_nifti": "flow.nii.gz",
    "segmentation": "segmentation.nii.gz",
    "keypoints": "keypoints.json",
    "report_json": "report.json",
    "report_csv": "report.csv",
}


def predict_study(
    cine: str | os.PathLike | torch.Tensor,
    out: str | os.PathLike,
    options: PredictOptions | None = None,
    predictor: KDMPredictor | Callable[[], KDMPredictor] | None = None,
    weights: PredictWeights | None = None,
    device: str = "auto",
    overwrite: bool = False,
    command: str | None = None,
    anonymize: bool | Anonymizer = False,
) -> Prediction:
    """Predict and write every output file into ``out`` (nothing is left there when it fails).

    The output folder and the input are checked, and the input read, before any model loads.

    Args:
        cine: the input loop (never modified): a file or a loaded loop (see :meth:`KDMPredictor.predict`).
        out: output folder (created; an existing one must be an echokdm folder, replaced with ``overwrite``).
        options: what to predict.
        predictor: loaded models, or a function that returns them (called once the input is read; default: loaded
            from ``weights`` on ``device``).
        weights: weights when ``predictor`` is None (default: shipped).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` when ``predictor`` is None.
        overwrite: replace an earlier echokdm output folder.
        command: the command line to record in the report.
        anonymize: de-identify ``prediction.dcm`` (DICOM PS3.15 basic profile, see :mod:`echokdm.io.anonymize`;
            pass one :class:`~echokdm.io.anonymize.Anonymizer` to keep UIDs consistent over several studies) and
            keep no input path, hash or command line in the report.

    Returns:
        The :class:`Prediction` (its report lists the files written).

    Raises:
        EchoKDMError: bad input (see :meth:`KDMPredictor.predict`) or an unusable output folder.
    """
    options = options or PredictOptions()
    inputs = [cine if isinstance(cine, (str, os.PathLike)) else None, options.keypoints, options.seg]
    OutputDir.check(out, overwrite, inputs=inputs)
    note("predict: read ...")
    inp = read_input(cine, options)
    if predictor is None:
        from echokdm.predict.predictor import KDMPredictor

        predictor = KDMPredictor.from_weights(weights, device)
    elif callable(predictor):
        predictor = predictor()
    return save_prediction(predictor.predict_input(inp), out, overwrite, command, anonymize, inputs)


def save_prediction(
    pred: Prediction, out: str | os.PathLike, overwrite: bool = False, command: str | None = None,
    anonymize: bool | Anonymizer = False,
    inputs: Sequence[str | os.PathLike | None] = (),
) -> Prediction:
    """Write every output file of ``pred`` into ``out``, the report last (nothing is left there when it fails).

    Args:
        pred: the prediction (a DICOM input lends its header to ``prediction.dcm``).
        out: output folder (see :func:`predict_study`).
        overwrite: replace an earlier echokdm output folder.
        command: the command line to record in the report.
        anonymize: see :func:`predict_study`.
        inputs: the input paths, which ``out`` must not hold (see :class:`~echokdm.outputs.OutputDir`).

    Returns:
        ``pred``, with the command line, the files written and the time writing took.

    Raises:
        OutputError: an unusable output folder.
    """
    from echokdm.io.anonymize import Anonymizer
    from echokdm.predict.report import report_csv

    anonymizer = (anonymize if isinstance(anonymize, Anonymizer) else Anonymizer()) if anonymize else None
    pred.command, pred.anonymized = command, anonymizer is not None
    with OutputDir.transaction(out, overwrite, inputs) as out_dir:
        note("predict: write ...")
        t0 = time.perf_counter()
        write_prediction(out_dir, pred, anonymizer)
        pred.timings["write"] = time.perf_counter() - t0
        pred.timings["total"] += pred.timings["write"]
        report = pred.report
        out_dir.write_text(FILES["report_csv"], report_csv(report))
        out_dir.write_json(FILES["report_json"], report)  # last: its presence marks a finished prediction
    return pred


def write_prediction(out: OutputDir, pred: Prediction, anonymizer: Anonymizer | None = None) -> None:
    """Write the frames, pictures, flow, segmentation and keypoints of ``pred`` (all but the report files), for a
    DICOM input also its DICOM SEG and SR (:mod:`echokdm.predict.dicom_outputs`), and list them in ``pred.files``;
    ``anonymizer`` de-identifies the DICOM files."""
    from echokdm.io import write_cine_dicom
    from echokdm.io.nifti import write_flow_sequence, write_label_sequence
    from echokdm.keypoints import KeypointTrack, save_keypoints
    from echokdm.predict.dicom_outputs import write_dicom_outputs

    meta = pred.sections["input"]
    frames8 = (np.clip(pred.frames, 0, 1) * 255).round().astype(np.uint8)
    spacing = meta["spacing_mm"]
    with out.atomic(FILES["dicom"]) as tmp:
        write_cine_dicom(tmp, frames8, frame_time_ms=_sequence_frame_time(pred), spacing_mm=spacing,
                         source=pred.header, series_description="echokdm prediction", derivation=_describe(pred),
                         anonymize=anonymizer)
    names = _write_pictures(out, pred, frames8)
    with out.atomic(FILES["flow_npy"]) as tmp, open(tmp, "wb") as f:
        np.save(f, pred.flows)
    with out.atomic(FILES["flow_nifti"]) as tmp:
        write_flow_sequence(tmp, pred.flows, spacing)
    with out.atomic(FILES["segmentation"]) as tmp:
        write_label_sequence(tmp, pred.labels, spacing)
    # the target keypoints alone, filed under the loop's frame of that phase: edit and pass back with --keypoints
    to_ed = pred.sections["request"]["phase"] == "ed"
    beat = pred.sections["phases"]["beat"]
    frame = pred.target_frame if pred.target_frame is not None else beat[0 if to_ed else 1]
    track = KeypointTrack(
        keypoints=pred.target_keypoints[None], frames=[frame], spacing_mm=tuple(spacing) if spacing else None,
        image_size=tuple(meta["image_size"]), phases={frame: "ED" if to_ed else "ES"},
    )
    with out.atomic(FILES["keypoints"]) as tmp:
        save_keypoints(tmp, track, fmt="json")
    dicom = write_dicom_outputs(out, pred, FILES["dicom"], anonymizer) if pred.header is not None else {}
    pred.files = {**{k: v for k, v in FILES.items() if k != "frames"}, "frames": names, **dicom}


def _write_pictures(out: OutputDir, pred: Prediction, frames8: np.ndarray) -> list[str]:
    """Write the predicted frames as PNGs, ``sequence.gif``, ``comparison.png`` and ``flow.png``; returns the
    frames' names."""
    import imageio.v3 as iio

    from echokdm.predict.figures import comparison_figure, flow_figure
    from echokdm.render import write_gif

    box = pred.sections["input"]["sector_box"]
    names = []
    for i, f in enumerate(frames8):
        names.append(f"{FILES['frames']}/frame_{i:03d}.png")
        with out.atomic(names[-1]) as tmp:
            iio.imwrite(tmp, f, extension=".png")
    source8 = (np.clip(pred.source, 0, 1) * 255).round().astype(np.uint8)
    frame_time = _sequence_frame_time(pred) if len(frames8) > 1 else 500.0
    with out.atomic(FILES["gif"]) as tmp:
        write_gif(tmp, np.concatenate([source8[None], frames8]), frame_time)
    with out.atomic(FILES["comparison"]) as tmp:
        comparison_figure(tmp, pred, box)
    with out.atomic(FILES["flow_png"]) as tmp:
        flow_figure(tmp, pred.flows[-1], pred.source, box)
    return names


def _describe(pred: Prediction) -> str:
    request = pred.sections["request"]
    if request["mode"] == "target_ef":
        target = f"ES at EF {request['target_ef']:g}%"
    else:
        target = "given keypoints" if request["mode"] == "keypoints" else request["phase"].upper()
    return f"echokdm KDM prediction of {target} from frame {pred.source_frame}"


def _sequence_frame_time(pred: Prediction) -> float:
    """Frame time of the predicted sequence: the source -> target time spread over its frames."""
    ft = pred.sections["input"]["frame_time_ms"] or 40.0
    beat = pred.sections["phases"]["beat"]
    span = abs(pred.target_frame - pred.source_frame) if pred.target_frame is not None else abs(beat[1] - beat[0])
    return float(ft) * max(span, 1) / len(pred.frames)
