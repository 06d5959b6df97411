"""The parts of the MONAI bundle ``pipelines/bundle/echokdm_a4c``: echokdm's KDM models in MONAI's roles.

- :func:`datalist`: the studies of a run (every DICOM file of a folder, or the bundled sample).
- :class:`KDMNetwork` (the bundle's ``network_def``): the KDM pipeline as a ``torch.nn.Module`` on the models'
  working grid, as ``metadata.json``'s ``network_data_format`` describes it (what ``verify_net_in_out`` runs).
- :class:`KDMInferer` (``inferer``): applies the network to a whole loaded cine loop with
  :meth:`echokdm.predict.KDMPredictor.predict` (segmentation, keypoints, then K2F/F2I on the source grid by
  :func:`echokdm.grid.kdm_on_source_grid`, measurements), as ``echokdm predict`` does.
- :class:`PredictionSaver` and :func:`run_inference`: the loop over the bundle's ``DataLoader`` that writes each
  study's files with :func:`echokdm.predict.save_prediction`; a study that fails is listed in ``failures.csv``
  and the others go on.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from monai.data import DataLoader, MetaTensor
from monai.inferers import Inferer

from echokdm.defaults import DEFAULT_STEPS, K2F_STEPS
from echokdm.errors import EchoKDMError, InputError
from echokdm.outputs import OutputDir
from echokdm.predict import KDMPredictor, Prediction, PredictOptions, save_prediction
from echokdm.progress import progress

logger = logging.getLogger(__name__)
#: the failed studies of a run (study, image, reason), in the output folder
FAILURES_CSV = "failures.csv"


def datalist(input_dir: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """The studies of a bundle run, one dict per DICOM file.

    Args:
        input_dir: a folder; every file directly in it with the DICOM ``DICM`` marker is a study (sorted by
            name; other files are skipped). None: the bundled sample loop (:func:`echokdm.data.sample_path`).

    Returns:
        ``[{"image": path, "study": name}, ...]``; ``name`` is the file name without a ``.dcm``/``.dicom`` suffix
        and names the study's output folder.

    Raises:
        InputError: the folder does not exist or holds no DICOM file, or two files give the same study name.
    """
    if input_dir is None:
        from echokdm.data import sample_path

        files = [sample_path()]
    else:
        root = Path(input_dir)
        if not root.is_dir():
            raise InputError(f"input folder {root} does not exist or is not a folder")
        files = sorted(p for p in root.iterdir() if p.is_file() and _has_dicom_marker(p))
        if not files:
            raise InputError(f"input folder {root} holds no DICOM file (none with the 'DICM' marker)")
    items, seen = [], {}
    for f in files:
        name = f.stem if f.suffix.lower() in (".dcm", ".dicom") else f.name
        if name in seen:
            raise InputError(f"{seen[name].name} and {f.name} would both be written to the output folder {name}/")
        seen[name] = f
        items.append({"image": str(f), "study": name})
    return items


class KDMNetwork(torch.nn.Module):
    """The KDM pipeline (flow autoencoder, K2F and F2I denoisers) of a predictor as one network.

    Works on the models' working grid (``sample_size`` pixels per side, 112 for the shipped weights): the
    source frame cropped to its sector and fitted to that grid, with the keypoints in the same grid's pixels.

    Args:
        predictor: loaded models (:meth:`echokdm.predict.KDMPredictor.from_weights`); its pipeline's models
            become this module's sub-modules, so ``.to(device)`` / ``.eval()`` act on them.
    """

    def __init__(self, predictor: KDMPredictor) -> None:
        super().__init__()
        self.predictor = predictor
        pipe = predictor.pipeline
        self.flow_vae, self.k2f_unet, self.f2i_unet = pipe.flow_vae, pipe.k2f_unet, pipe.f2i_unet

    @property
    def sample_size(self) -> int:
        return self.predictor.pipeline.sample_size

    @torch.no_grad()
    def forward(
        self,
        image: torch.Tensor,
        keypoints: torch.Tensor | Any,
        num_inference_steps: int = DEFAULT_STEPS,
        seed: int = 0,
        k2f_steps: int = K2F_STEPS,
    ) -> torch.Tensor:
        """Generate the frame each source frame shows at its target keypoints (K2F flow, then F2I).

        Args:
            image: (B, 1, S, S) source frames in [0, 1] on the working grid.
            keypoints: (B, 2, K, 2) per source: its keypoints and the target keypoints, (x, y) in working-grid
                pixels (a tensor or nested lists).
            num_inference_steps: denoising steps of F2I.
            seed: seed of the sampling noise of every item (an item's result does not depend on the batch).
            k2f_steps: denoising steps of K2F.

        Returns:
            (B, 1, S, S) generated frames, float32 in [0, 1].

        Raises:
            InputError: shapes other than the above.
        """
        size = self.sample_size
        kps = torch.as_tensor(keypoints, dtype=torch.float32).cpu()
        if image.ndim != 4 or tuple(image.shape[1:]) != (1, size, size):
            raise InputError(f"image must be (B, 1, {size}, {size}), got {tuple(image.shape)}")
        if kps.ndim != 4 or kps.shape[0] != image.shape[0] or kps.shape[1] != 2 or kps.shape[3] != 2:
            raise InputError(f"keypoints must be (B, 2, K, 2) with B = {image.shape[0]}, got {tuple(kps.shape)}")
        frames = []
        for src, (source_kps, target_kps) in zip(image, kps):
            out = self.predictor.pipeline(
                src, source_kps, target_kps, num_inference_steps=num_inference_steps, k2f_steps=k2f_steps,
                generator=torch.Generator().manual_seed(int(seed)), output_type="pt",
            )
            frames.append(out.frames.float())
        return torch.stack(frames)


class KDMInferer(Inferer):
    """Apply a :class:`KDMNetwork` to whole cine loops, as ``echokdm predict`` does.

    Args:
        options: what to predict (default: ED -> ES of the first beat, default steps, seed 0).
    """

    def __init__(self, options: PredictOptions | None = None) -> None:
        super().__init__()
        self.options = options or PredictOptions()

    def __call__(self, inputs: MetaTensor, network: KDMNetwork, *args: Any, **kwargs: Any) -> Prediction:
        """Args:
            inputs: (1, T, H, W) loop from :class:`echokdm.transforms.LoadCineLoop` (its meta included).
            network: the models to use.

        Returns:
            The :class:`~echokdm.predict.Prediction` on the loop's own grid, with its report.

        Raises:
            InputError: see :meth:`echokdm.predict.KDMPredictor.predict`.
        """
        return network.predictor.predict(inputs, self.options)


class PredictionSaver:
    """Write each study's prediction into ``output_dir/<study>/`` (the files of ``echokdm predict``).

    Args:
        output_dir: created if missing; an existing one must be empty or made by echokdm.
        overwrite: replace a study folder an earlier run wrote.
        command: the command line to record in each report.

    Raises:
        OutputError: ``output_dir`` is a file or a foreign non-empty folder.
    """

    def __init__(self, output_dir: str | os.PathLike, overwrite: bool = False, command: str | None = None) -> None:
        self.root = OutputDir(output_dir, resume=True)
        self.overwrite = overwrite
        self.command = command

    def __call__(self, item: Mapping[str, Any], pred: Prediction) -> Path:
        """Write ``pred`` of the :func:`datalist` item ``item``; returns the study folder."""
        out = self.root.path / item["study"]
        save_prediction(pred, out, self.overwrite, self.command)
        return out


def run_inference(
    dataloader: DataLoader, network: KDMNetwork, inferer: KDMInferer, saver: PredictionSaver
) -> list[Path]:
    """Predict and save every study of ``dataloader`` (batch size 1, batches left uncollated: lists of one
    :func:`datalist` item with the loop loaded under ``image``).

    A study that cannot be loaded, predicted or written is logged with its one-line reason, listed in
    ``failures.csv`` (study, image, reason) and skipped; the others go on.

    Returns:
        The study folders written, in order.

    Raises:
        SystemExit: after the last study, when some failed (exit status 1, the count and ``failures.csv`` named).
    """
    network.eval()
    items = list(dataloader.dataset.data)
    written, failures = [], []
    batches = iter(dataloader)
    for item in progress(items, "predict"):
        try:
            (loaded,) = next(batches)
            pred = inferer(loaded["image"], network)
            written.append(saver(loaded, pred))
        except Exception as e:  # only echokdm's user errors are skipped; others propagate
            reason = _user_error(e)
            if reason is None:
                raise
            logger.error("%s: %s", item["study"], reason)
            failures.append({"study": item["study"], "image": item["image"], "reason": " ".join(str(reason).split())})
            continue
        ef = pred.report["ef"]
        logger.info(
            "%s: frame %d -> %s: EF target keypoints %.1f %%, prediction %s -> %s", item["study"], pred.source_frame,
            pred.target_frame, ef["target_keypoints"],
            f"{ef['prediction']:.1f} %" if ef["prediction"] is not None else "not measurable", written[-1],
        )
    table = pd.DataFrame(failures, columns=["study", "image", "reason"])
    saver.root.write_text(FAILURES_CSV, table.to_csv(index=False))
    if failures:
        raise SystemExit(f"{len(failures)} of {len(items)} studies failed; reasons in {saver.root.path / FAILURES_CSV}")
    return written


def command_line() -> str:
    """This process's command line for reports: ``python -m monai.bundle ...`` when it runs MONAI's bundle entry
    point, else ``sys.argv`` as it is."""
    argv = list(sys.argv)
    if Path(argv[0]).parts[-3:] == ("monai", "bundle", "__main__.py"):
        argv = ["python", "-m", "monai.bundle", *argv[1:]]
    return shlex.join(argv)


def _user_error(error: BaseException) -> EchoKDMError | None:
    """The echokdm error behind ``error`` (MONAI's transforms wrap what they raise in a ``RuntimeError``)."""
    while error is not None and not isinstance(error, EchoKDMError):
        error = error.__cause__
    return error


def _has_dicom_marker(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


__all__ = ["KDMInferer", "KDMNetwork", "PredictionSaver", "command_line", "datalist", "run_inference"]
