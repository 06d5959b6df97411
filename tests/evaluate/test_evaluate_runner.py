"""Scoring loop and report of the evaluation harness on synthetic loops: perfect scores, resumability,
determinism, the report files, and the target-EF task with a stand-in keypoint prior."""

import dataclasses
import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
from evaluate_synthetic import synthetic_case
from scipy.optimize import brentq

from echokdm.errors import OutputError, UnsupportedError
from echokdm.evaluate.cases import CaseRef
from echokdm.evaluate.run import run_evaluation
from echokdm.evaluate.runner import evaluate_cases, score_prediction
from echokdm.evaluate.segmenter import AtlasSegmenter
from echokdm.evaluate.tasks import load_prior, make_sample
from echokdm.metrics import PSNR_CAP, ef_from_keypoints
from echokdm.outputs import OutputDir

SIZE = 64


def refs(seeds, calls=None):
    def load(seed):
        if calls is not None:
            calls.append(seed)
        return synthetic_case(seed, size=SIZE)

    return [CaseRef(f"syn{s:03d}", partial(load, s)) for s in seeds]


@pytest.mark.parametrize("task", ["es", "ed", "sequence"])
def test_a_prediction_equal_to_the_target_scores_perfectly(task):
    s = make_sample(synthetic_case(2, size=SIZE), task)
    out = score_prediction(s, s.targets, s.target_labels, s.source_labels, n_keypoints=40)
    assert out["psnr"] == PSNR_CAP
    assert out["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert out["dice"] == 1.0 and out["hd95"] == 0.0
    assert out["kp_err"] == 0.0
    assert out["ef_err"] == 0.0 and out["ef_pred"] == out["ef_true"] > 5.0


def test_a_still_prediction_has_no_ef():
    s = make_sample(synthetic_case(2, size=SIZE), "sequence")
    still = np.repeat(s.source[None], len(s.targets), 0)
    out = score_prediction(s, still, np.repeat(s.source_labels[None], len(s.targets), 0), s.source_labels, 40)
    assert out["ef_pred"] == 0.0 and out["ef_err"] == pytest.approx(out["ef_kp"])
    assert out["warp_residual"] == pytest.approx(0.0, abs=1e-6) and out["area_jitter"] == 0.0
    assert out["dice"] < 1.0 and out["ssim"] < 0.9


def test_scoring_resumes_and_adds_predictors(tmp_path):
    out, calls = OutputDir(tmp_path / "r", resume=True), []
    seg = AtlasSegmenter()
    t1 = evaluate_cases(refs([0, 1], calls), ["copy", "tps"], "es", out, seg)
    assert calls == [0, 1] and len(t1) == 4
    t2 = evaluate_cases(refs([0, 1, 3], calls), ["copy", "tps"], "es", out, seg)
    assert calls == [0, 1, 3] and len(t2) == 6  # only the new case was loaded
    pd.testing.assert_frame_equal(t2.iloc[:4].reset_index(drop=True), t1, check_dtype=False)
    t3 = evaluate_cases(refs([0, 1, 3], calls), ["copy", "tps", "oracle"], "es", out, seg)
    assert len(t3) == 9 and (t3["predictor"] == "oracle").sum() == 3
    on_disk = pd.read_csv(out.path / "scores.csv")
    assert len(on_disk) == 9 and not on_disk["skipped"].any()


def test_an_interrupted_run_keeps_what_it_scored(tmp_path):
    out = OutputDir(tmp_path / "r", resume=True)

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate_cases(refs([0]) + [CaseRef("syn999", boom)], ["copy"], "es", out, AtlasSegmenter())
    assert pd.read_csv(out.path / "scores.csv")["case_id"].tolist() == ["syn000"]


@pytest.mark.slow
def test_report_files_determinism_and_settings(tmp_path):
    kw = dict(predictors=["copy", "tps", "oracle"], task="es", segmenter="atlas", size=SIZE, seed=3)
    a = run_evaluation(refs([0, 1, 2, 4]), tmp_path / "a", **kw)
    b = run_evaluation(refs([0, 1, 2, 4]), tmp_path / "b", **kw)
    cols = [c for c in a.table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(a.table[cols], b.table[cols])
    assert (tmp_path / "a" / "summary.md").read_text() == (tmp_path / "b" / "summary.md").read_text()
    for f in a.figures:
        assert f.stat().st_size > 5000
    text = a.summary.read_text()
    assert "| ssim |" in text and "copy (baseline)" in text and "oracle (ceiling)" in text and "tps − best" in text
    assert json.loads((tmp_path / "a" / "run.json").read_text())["seed"] == 3
    with pytest.raises(OutputError, match="other settings.*seed"):
        run_evaluation(refs([0]), tmp_path / "a", **{**kw, "seed": 4})
    c = run_evaluation(refs([0]), tmp_path / "a", **{**kw, "seed": 4}, overwrite=True)
    assert c.table["case_id"].nunique() == 1


class ScalingPrior:
    """Stand-in motion prior: shrinks the keypoints towards the annulus midpoint until the EF is reached."""

    def __call__(self, kps, *, target_ef, spacing_mm):
        mid = (kps[0] + kps[19]) / 2
        c = brentq(lambda c: ef_from_keypoints(kps, mid + (kps - mid) * c, spacing_mm) - target_ef, 0.3, 1.0)
        return mid + (kps - mid) * c


def test_target_ef_task_with_a_prior(tmp_path):
    res = run_evaluation(refs([0, 1]), tmp_path / "t", predictors=["copy", "tps", "oracle"], task="target-ef",
                         segmenter="atlas", size=SIZE, prior=ScalingPrior())
    rows = res.table[~res.table["skipped"].astype(bool)]
    assert set(rows["predictor"]) == {"copy", "tps"}  # the oracle has no true motion to a requested EF
    assert rows["ef_kp"].to_numpy() == pytest.approx(rows["ef_true"].to_numpy(), abs=0.01)
    assert "ssim" not in rows and "dice" not in rows
    tps, copy = rows[rows["predictor"] == "tps"], rows[rows["predictor"] == "copy"]
    assert (tps["ef_err_target"].to_numpy() < copy["ef_err_target"].to_numpy()).all()
    assert "ef_err_target" in res.summary.read_text() and "oracle needs ddf, which" in res.summary.read_text()


def test_target_ef_sample_is_on_the_cases_spacing():
    """The motion prior is asked for the requested EF on the case's own (here non-square) pixels."""
    from conftest import synthetic_systoles

    from echokdm.models.prior import KeypointMotionPrior

    prior = KeypointMotionPrior.fit(synthetic_systoles(), n_phases=8)
    case = dataclasses.replace(synthetic_case(0, size=SIZE), spacing_mm=(0.3, 0.6))
    sample = make_sample(case, "target-ef", prior=prior)
    ef = ef_from_keypoints(sample.source_keypoints, sample.target_keypoints[0], case.spacing_mm)
    assert ef == pytest.approx(sample.target_ef, abs=1e-3)


def test_target_ef_without_a_prior_says_so(tmp_path, monkeypatch):
    from echokdm import weights

    monkeypatch.setattr(weights, "manifest", lambda root=weights.WEIGHTS_DIR: {})  # an install without a prior
    with pytest.raises(UnsupportedError, match="target-ef.*motion prior"):
        load_prior()
    with pytest.raises(UnsupportedError, match="target-ef"):
        run_evaluation(refs([0]), tmp_path / "n", task="target-ef", segmenter="atlas")
    assert not (tmp_path / "n").exists()


def test_kdm_calibrates_a_requested_ef(tiny_weights, monkeypatch):
    """kdm predicts from the prior's keypoints at the EF the calibration solved for (as predict --target-ef),
    each calibration step a prediction measured; k2f-warp keeps the sample's keypoints."""
    import torch

    import echokdm.predict.ef_request as er
    from echokdm.evaluate.kdm import K2FWarpModel, KDMModel
    from echokdm.predict import PredictWeights

    steps = []

    def solved_10_above(measure, requested, **kw):
        steps.append((requested, measure(requested + 10)))
        return er.EFCalibration(requested, requested + 10, steps[-1][1])

    monkeypatch.setattr(er, "calibrate_request", solved_10_above)
    sample = make_sample(synthetic_case(0, size=SIZE), "target-ef", prior=ScalingPrior())
    weights = PredictWeights.from_dir(tiny_weights)
    kps = KDMModel(steps=1, weights=weights).targets(sample, torch.Generator().manual_seed(0))
    assert kps.shape == sample.target_keypoints.shape and steps[0][0] == sample.target_ef
    assert ef_from_keypoints(sample.source_keypoints, kps[0], sample.spacing_mm) == pytest.approx(
        sample.target_ef + 10, abs=0.01)
    assert K2FWarpModel(steps=1, weights=weights).targets(sample, None) is sample.target_keypoints
