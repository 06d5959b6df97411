"""Per-study adaptation (``echokdm predict --adapt``, :mod:`echokdm.train.adapt`): the step budget, the frames
left out, determinism, the report section and clear errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from broken_inputs import run_inprocess

from echokdm.errors import InputError
from echokdm.evaluate.predictors import get_predictor
from echokdm.predict import KDMPredictor, PredictOptions, PredictWeights
from echokdm.train.adapt import STEPS_PER_SECOND, adapt_pipeline, excluded_frames, loop_pairs, plan_steps

SCHEMA = json.loads((Path(__file__).parents[2] / "data_specs" / "predict_report.schema.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def predictor(tiny_weights):
    return KDMPredictor.from_weights(PredictWeights.from_dir(tiny_weights))


def opts(study, **kw):
    return PredictOptions(seg=str(study.labels_nii), steps=2, **kw)


def test_budget_is_a_fixed_rate_and_steps_override_it():
    assert plan_steps(30, None) == round(30 * STEPS_PER_SECOND)
    assert plan_steps(0, None) == 0
    assert plan_steps(30, 7) == 7 and plan_steps(None, 3) == 3
    for seconds, steps in ((-1, None), (float("nan"), None), (None, -2), (None, 1.5), (None, None)):
        with pytest.raises(InputError):
            plan_steps(seconds, steps)


def test_scored_target_and_neighbours_are_left_out():
    assert excluded_frames(30, 29) == [27, 28, 29]
    assert excluded_frames(30, 10) == [8, 9, 10, 11, 12]
    assert excluded_frames(30, None) == []
    pairs = loop_pairs([0, 1, 2, 5, 20], max_gap=3)
    assert {tuple(p) for p in pairs} == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1), (2, 5), (5, 2)}


def test_adapted_prediction_is_deterministic_and_honest(predictor, phantom_study):
    before = {k: v.clone() for k, v in predictor.pipeline.f2i_unet.state_dict().items()}
    plain = predictor.predict(phantom_study.dicom, opts(phantom_study, seed=3))
    a = predictor.predict(phantom_study.dicom, opts(phantom_study, seed=3, adapt=60, adapt_steps=4))
    b = predictor.predict(phantom_study.dicom, opts(phantom_study, seed=3, adapt=60, adapt_steps=4))
    assert np.array_equal(a.frames, b.frames) and not np.array_equal(a.frames, plain.frames)
    # the shared pipeline is not changed by an adaptation
    after = predictor.pipeline.f2i_unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    info = a.report["adapt"]
    es = a.target_frame
    n = len(phantom_study.frames)
    assert info["excluded_frames"] == [t for t in range(es - 2, es + 3) if t < n]
    assert info["frames_used"] == [t for t in range(n) if t not in info["excluded_frames"]]
    assert (info["steps"], info["steps_done"], info["capped"]) == (4, 4, False)
    # F2I learns on K2F flows of the loop's keypoints: one batch of flows (a step), then three F2I steps
    assert (info["flows"], info["flow_steps"], info["ofnet_steps"], info["f2i_steps"]) == ("k2f", 1, 0, 3)
    assert plain.report["adapt"] is None
    jsonschema.validate(a.report["adapt"], SCHEMA["properties"]["adapt"])


def test_time_cap_stops_before_the_planned_steps(predictor):
    frames = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    sector = np.ones((32, 32), bool)
    _, info = adapt_pipeline(predictor.pipeline, frames, sector, exclude=[6, 7], seconds=0.0, steps=3)
    assert (info.steps, info.steps_done, info.capped, info.flows) == (3, 0, True, "ofnet")  # no labels: OF-net
    _, info = adapt_pipeline(predictor.pipeline, frames, sector, exclude=[6, 7], seconds=None, steps=4)
    assert (info.steps_done, info.ofnet_steps, info.f2i_steps, info.frames_used) == (4, 1, 3, list(range(6)))
    _, info = adapt_pipeline(predictor.pipeline, frames, sector, exclude=range(8), seconds=None, steps=0)
    assert (info.steps_done, info.pairs, info.frames_used) == (0, 0, [])
    with pytest.raises(InputError, match="two frames"):
        adapt_pipeline(predictor.pipeline, frames, sector, exclude=range(8), steps=2)


@pytest.mark.parametrize(("value", "expected"), [("-1", "--adapt takes seconds"), ("abc", "'abc' is not a valid")])
def test_bad_adapt_values_are_one_line(value, expected, phantom_study, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOKDM_PROGRESS", "0")
    out = tmp_path / "out"
    status, stdout, stderr = run_inprocess(
        ["predict", "--dicom", str(phantom_study.dicom), "--adapt", value, "--weights", str(tiny_weights),
         "--out", str(out)]
    )
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("echokdm: error:") and expected in lines[0], stderr
    assert not out.exists()


def test_evaluate_predictor_option_is_checked():
    for name, expected in (("kdm-adapt:abc", "takes a number of seconds"), ("kdm-adapt:-3", "--adapt takes"),
                           ("copy:3", "takes no ':' option"), ("nope:3", "unknown predictor")):
        with pytest.raises(InputError, match=expected):
            get_predictor(name)


def test_one_cine_file_is_an_evaluate_case_with_its_loop(phantom_study):
    from echokdm.evaluate.cases import resolve_cases
    from echokdm.evaluate.tasks import make_sample
    from echokdm.keypoints import extract_keypoints, myocardial_area

    (ref,) = resolve_cases(str(phantom_study.dicom), 64)
    case = ref.load()
    assert ref.case_id == "study" and case.frames.shape == (20, 64, 64) and sorted(case.labels) == list(range(20))
    # ED/ES from the built-in segmenter's LV area curve: within a frame of the phantom's true ones
    assert abs(case.ed - phantom_study.ed[0]) <= 1 and abs(case.es - phantom_study.es[0]) <= 1
    sample = make_sample(case, "es")
    assert sample.loop is case.frames and sample.target_frames == [case.es]
    # the segmenter's labels: the target's wall moves with its endocardium, as predict moves it
    assert not case.walls_observed
    np.testing.assert_allclose(sample.target_keypoints[0][:20], extract_keypoints(case.labels[case.es], 20))
    assert myocardial_area(sample.target_keypoints[0]) == pytest.approx(myocardial_area(sample.source_keypoints), 1e-4)
