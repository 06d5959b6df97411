"""The models behind ``echokdm predict`` (:class:`KDMPredictor`) and the stages they run on a study."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np
import torch

from echokdm.defaults import EF_CHECK, PRIOR_WEIGHTS
from echokdm.device import autocast, channels_last, check_precision, resolve_device
from echokdm.errors import UnsupportedError
from echokdm.grid import SourceGridOutput, kdm_on_source_grid
from echokdm.labels import camus_labels
from echokdm.predict.ef_check import checked_prediction, ef_miss
from echokdm.predict.ef_request import calibrated_keypoints
from echokdm.predict.options import PredictOptions, PredictWeights
from echokdm.predict.report import Prediction, measure, study_sections
from echokdm.predict.study import StudyInput, find_study, read_input
from echokdm.progress import note
from echokdm.segmenter import Segmenter


class StageClock:
    """Wall-clock seconds per named stage (a stage entered twice adds up); each stage's start is a progress line
    (:func:`echokdm.progress.note`)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.device = device

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        note(f"predict: {name} ...")  # a run takes seconds to minutes: say what it is doing
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.device is not None and self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


class KDMPredictor:
    """The models behind ``echokdm predict``, loaded once (a batch reuses them for every study).

    Args:
        pipeline: the KDM pipeline (working resolution ``pipeline.sample_size``).
        segmenter: labels the loop and each predicted frame (:class:`echokdm.segmenter.Segmenter`).
        prior: keypoint motion prior weights (name or path), loaded when ``--target-ef`` needs it.
        weights: role -> {"name", "sha256"} of the weights in use (for the report).
    """

    def __init__(
        self,
        pipeline,
        segmenter: Segmenter,
        prior: str = PRIOR_WEIGHTS,
        weights: dict[str, dict] | None = None,
        precision: str = "auto",
    ) -> None:
        self.pipeline = pipeline
        self.segmenter = segmenter
        self.prior_weights = prior
        self.weights = dict(weights or {})
        #: ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``fp32`` or ``bf16`` (:mod:`echokdm.device`)
        self.precision = check_precision(precision)
        self._prior = None

    @classmethod
    def from_weights(
        cls, weights: PredictWeights | None = None, device: str = "auto", precision: str = "auto"
    ) -> KDMPredictor:
        """Load the pipeline and the segmenter (default: the shipped weights; nothing is downloaded).

        Args:
            weights: the weights of each role (default: shipped).
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`echokdm.device.resolve_device`).
            precision: ``auto`` (bf16 autocast on CUDA), ``fp32`` or ``bf16``.

        Raises:
            InputError: missing or foreign weights, or ``device`` not available.
            UnsupportedError: this echokdm ships no KDM weights yet.
        """
        from echokdm.pipeline import EchoKDMPipeline
        from echokdm.segmenter import BuiltinSegmenter

        weights = weights or PredictWeights()
        dev = resolve_device(device)
        _require_shipped(weights)
        pipe = EchoKDMPipeline.from_weights(weights.flow_vae, weights.k2f, weights.f2i).to(dev)
        for unet in (pipe.k2f_unet, pipe.f2i_unet):
            channels_last(unet, dev, inference=True)
        seg = BuiltinSegmenter(weights=weights.seg, device=str(dev))
        channels_last(seg.model.network, dev, inference=True)
        info = {role: {"name": _weights_name(getattr(weights, role)), "sha256": _sha256(getattr(weights, role))}
                for role in ("seg", "flow_vae", "k2f", "f2i")}
        return cls(pipe, seg, weights.prior, info, precision)

    @property
    def prior(self):
        """The keypoint motion prior (:class:`echokdm.models.prior.KeypointPrior`, loaded on first use)."""
        if self._prior is None:
            from echokdm.models.prior import KeypointMotionPrior

            _require_shipped(PredictWeights(prior=self.prior_weights), roles=("prior",))
            self._prior = KeypointMotionPrior.load(self.prior_weights)
            self.weights["prior"] = {"name": _weights_name(self.prior_weights), "sha256": _sha256(self.prior_weights)}
        return self._prior

    @property
    def device(self) -> torch.device:
        return self.pipeline.f2i_unet.device

    def predict(self, cine: str | os.PathLike | torch.Tensor, options: PredictOptions | None = None) -> Prediction:
        """Predict the target frame (or the sequence towards it) of a cine loop; writes nothing.

        Args:
            cine: a DICOM cine (or any :func:`echokdm.io.load_cine` input), or the (1, T, H, W) ``MetaTensor``
                that :func:`~echokdm.io.load_cine` / :class:`~echokdm.transforms.LoadCineLoop` made of one.
            options: what to predict (default: ED -> ES).

        Returns:
            The :class:`~echokdm.predict.Prediction` with its report.

        Raises:
            InputError: everything :func:`~echokdm.predict.read_input` and :func:`~echokdm.predict.find_study`
                reject: an unreadable loop, a single frame, a loop without a visible beat, a segmentation that does
                not fit the loop, an unusable keypoint file.
        """
        return self.predict_input(read_input(cine, options))

    def predict_input(self, inp: StudyInput) -> Prediction:
        """:meth:`predict` of an input read by :func:`~echokdm.predict.read_input`.

        Stages (each timed): ``segment`` (the loop's labels, unless given), ``keypoints`` (beat, frames and
        keypoints), ``prepare`` / ``k2f`` / ``f2i`` / ``transfer`` (:func:`echokdm.grid.kdm_on_source_grid`),
        ``segment_prediction`` (the source and each predicted frame, each on its own) and ``measure``; the KDM
        stages and ``segment_prediction`` run twice when the EF check makes a second attempt
        (:mod:`echokdm.predict.ef_check`; for a target EF the miss is measured against the request).
        """
        opts = inp.options
        clock = StageClock(self.device)
        clock.seconds["load"] = inp.seconds
        t_start = time.perf_counter() - inp.seconds
        with clock("segment"), self._autocast():
            labels = inp.labels
            if labels is None:
                frame_time_ms = inp.meta.get("frame_time_ms")
                seg = self.segmenter(
                    inp.frames, sector_mask=inp.sector, spacing_mm=inp.spacing, frame_time_ms=frame_time_ms
                )
                labels = camus_labels(seg)
        with clock("keypoints"):
            study = find_study(inp, labels, lambda: self.prior)
        source = inp.frames[study.source_frame]
        pipeline, adapt = self._adapted(inp, labels, study.target_frame, clock)
        calibration = None
        if opts.mode == "target_ef":
            with clock("calibrate"), self._autocast():
                study.target_kps, calibration = calibrated_keypoints(
                    pipeline, self.prior, lambda f: self._segment_frames(f[None], inp)[0], source, inp.sector,
                    study.source_kps, opts.target_ef, inp.spacing, opts.steps, opts.seed, opts.k2f_steps,
                )

        with clock("segment_prediction"), self._autocast():  # the source's labels, once for both attempts
            source_labels = self._segment_frames(source[None], inp)

        def attempt(strict: bool) -> tuple[SourceGridOutput, np.ndarray]:
            with self._autocast():
                out = kdm_on_source_grid(
                    pipeline, source, inp.sector, study.source_kps, study.target_kps, opts.alphas, opts.steps,
                    torch.Generator().manual_seed(opts.seed), clock=clock, k2f_steps=opts.k2f_steps, strict=strict,
                )
            with clock("segment_prediction"), self._autocast():
                return out, np.concatenate([source_labels, self._segment_frames(out.frames, inp)])

        def miss(attempted: tuple[SourceGridOutput, np.ndarray]) -> float | None:
            return ef_miss(attempted[1], study.source_kps, study.target_kps, study.source_is_ed, inp.spacing,
                           opts.target_ef)

        if not opts.ef_check:
            (out, pred_labels), check = attempt(False), None
        else:
            (out, pred_labels), check = checked_prediction(attempt, miss, EF_CHECK, lambda a: a[0].strict_same)
        with clock("measure"):
            sections = {**study_sections(study, out.fit, self.device), **measure(study, out.frames, pred_labels)}
            sections["adapt"] = adapt
            sections["cavity_check"] = {"tolerance": 0.0 if check and check.kept == "second"
                                        else pipeline.cavity_tolerance, "trust": out.trust}
            sections["ef_check"] = None if check is None else check.as_dict()
            sections["ef"]["calibration"] = None if calibration is None else calibration.as_dict()
        clock.seconds["total"] = time.perf_counter() - t_start
        observed = study.target_frame is not None
        return Prediction(
            frames=out.frames, flows=out.flows, labels=pred_labels[1:], source=source,
            source_labels=labels[study.source_frame], source_frame=study.source_frame,
            target=inp.frames[study.target_frame] if observed else None,
            target_labels=labels[study.target_frame] if observed else None, target_frame=study.target_frame,
            source_keypoints=study.source_kps, target_keypoints=study.target_kps, alphas=opts.alphas,
            sections=sections, weights=dict(self.weights), header=inp.header, timings=clock.seconds,
        )

    def _autocast(self) -> AbstractContextManager:
        """bf16 autocast around the networks' work when :attr:`precision` asks for it (metrics stay fp32)."""
        return autocast(self.device, self.precision)

    def _adapted(self, inp: StudyInput, labels: np.ndarray, target_frame: int | None, clock: StageClock):
        """The pipeline, adapted to the loop when asked (:func:`echokdm.train.adapt.adapt_pipeline`; an observed
        target and its neighbours left out), and the report's ``adapt`` section (None without adaptation)."""
        opts = inp.options
        if not opts.adapts:
            return self.pipeline, None
        from echokdm.train.adapt import adapt_pipeline, excluded_frames

        with clock("adapt"), self._autocast():
            pipeline, info = adapt_pipeline(
                self.pipeline, inp.frames, inp.sector, excluded_frames(len(inp.frames), target_frame),
                seconds=opts.adapt, steps=opts.adapt_steps, seed=opts.seed, labels=dict(enumerate(labels)),
            )
        return pipeline, info.to_dict()

    def _segment_frames(self, frames: np.ndarray, inp: StudyInput) -> np.ndarray:
        """Each frame segmented on its own (no temporal smoothing across source and predictions)."""
        out = [self.segmenter(f[None], sector_mask=inp.sector, spacing_mm=inp.spacing)[0] for f in frames]
        return camus_labels(np.stack(out))


def _require_shipped(weights: PredictWeights, roles: tuple[str, ...] = ("seg", "flow_vae", "k2f", "f2i")) -> None:
    """A clear error when default weights are not shipped with this echokdm (yet)."""
    from echokdm.weights import manifest

    shipped = manifest()
    missing = [
        getattr(weights, r)
        for r in roles
        if not str(getattr(weights, r)).endswith(".safetensors") and getattr(weights, r) not in shipped
    ]
    if missing:
        raise UnsupportedError(
            f"this echokdm ships no weights named {', '.join(missing)}; train them (pipelines/train_kdm.sh) and pass "
            "--weights DIR with files named like the shipped ones"
        )


def _weights_name(name: str) -> str:
    return Path(name).name if str(name).endswith(".safetensors") else str(name)


def _sha256(name: str) -> str:
    from echokdm.weights import WEIGHTS_DIR, manifest, sha256_of

    entry = manifest().get(str(name))
    return (
        entry["sha256"]
        if entry
        else sha256_of(Path(name) if str(name).endswith(".safetensors") else WEIGHTS_DIR / name)
    )
