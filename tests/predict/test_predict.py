"""echokdm.predict in-process on tiny untrained weights: stages, modes, determinism, report and files."""

import builtins
import io
import json
from hashlib import sha256
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from echokdm.errors import InputError
from echokdm.grid import kdm_on_source_grid
from echokdm.io import write_label_sequence
from echokdm.keypoints import KeypointTrack, extract_keypoints, myocardial_area, save_keypoints
from echokdm.predict import KDMPredictor, PredictOptions, PredictWeights, predict_study

SCHEMA = json.loads((Path(__file__).parents[2] / "data_specs" / "predict_report.schema.json").read_text())


class NearestFrameSegmenter:
    """Labels each frame with the true labels of the most similar frame of the loop (a stand-in for a trained
    segmenter, so the EF of predictions can be measured with untrained KDM weights)."""

    def __init__(self, frames: np.ndarray, labels: np.ndarray) -> None:
        self.frames, self.labels = frames.astype(np.float32) / 255, labels

    def __call__(self, frames, *, sector_mask, spacing_mm=None, atlas=None, frame_time_ms=None):
        idx = [int(np.argmin(((self.frames - f) ** 2).mean(axis=(1, 2)))) for f in frames]
        return self.labels[idx]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and threads only contend on the shared test machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def predictor(tiny_weights):
    return KDMPredictor.from_weights(PredictWeights.from_dir(tiny_weights))


@pytest.fixture(scope="module")
def oracle(predictor, phantom_study):
    return KDMPredictor(predictor.pipeline, NearestFrameSegmenter(phantom_study.frames, phantom_study.labels),
                        predictor.prior_weights, predictor.weights)


def opts(study, **kw):
    return PredictOptions(seg=str(study.labels_nii), steps=2, **kw)


def test_es_prediction_follows_the_pipeline(predictor, phantom_study):
    p = predictor.predict(phantom_study.dicom, opts(phantom_study))
    assert (p.source_frame, p.target_frame) == (phantom_study.ed[0], phantom_study.es[0])
    assert p.frames.shape == (1, 128, 128) and p.flows.shape == (1, 2, 128, 128) and p.labels.shape == (1, 128, 128)
    np.testing.assert_allclose(p.source_keypoints, extract_keypoints(phantom_study.labels[p.source_frame], 40))
    # the real ES frame's endocardium; its wall moved with it from the source's, keeping the source's wall area
    np.testing.assert_allclose(p.target_keypoints[:20], extract_keypoints(phantom_study.labels[p.target_frame], 20))
    assert myocardial_area(p.target_keypoints) == pytest.approx(myocardial_area(p.source_keypoints), rel=1e-4)
    # KDM on the source grid with the loop's sector, the keypoints found, the requested steps and seed
    from echokdm.io import load_cine

    loop = load_cine(phantom_study.dicom)
    out = kdm_on_source_grid(predictor.pipeline, loop[0, p.source_frame].numpy(), loop.meta["sector_mask"],
                             p.source_keypoints, p.target_keypoints, [1.0], 2, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(p.frames, out.frames)
    np.testing.assert_array_equal(p.flows, out.flows)
    # the EF the target keypoints imply is the loop's own beat EF here
    assert p.report["ef"]["target_keypoints"] == pytest.approx(p.report["ef"]["source_beat"])
    jsonschema.validate({**p.report, "timings_s": {**p.timings, "write": 0.0}, "files": _files()}, SCHEMA)
    assert p.report["input"]["sha256"] == sha256(phantom_study.dicom.read_bytes()).hexdigest()


def _files():
    return {k: ["frames/frame_000.png"] if k == "frames" else k for k in SCHEMA["properties"]["files"]["required"]}


def test_same_seed_same_pixels(predictor, phantom_study):
    a = predictor.predict(phantom_study.dicom, opts(phantom_study, seed=5)).frames
    b = predictor.predict(phantom_study.dicom, opts(phantom_study, seed=5)).frames
    c = predictor.predict(phantom_study.dicom, opts(phantom_study, seed=6)).frames
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bf16_prediction_scores_in_fp32(tiny_weights, phantom_study, tmp_path):
    """bf16 autocast (the default on CUDA) covers the networks only: the report's metrics and every file are
    computed and written in fp32, and the pixels stay close to the fp32 prediction's."""
    bf16 = KDMPredictor.from_weights(PredictWeights.from_dir(tiny_weights), device="cpu", precision="bf16")
    p = predict_study(phantom_study.dicom, tmp_path / "out", opts(phantom_study), predictor=bf16)
    assert p.frames.dtype == np.float32 and p.flows.dtype == np.float32
    scores = p.report["image_metrics"]
    assert np.isfinite(scores["psnr"]) and np.isfinite(scores["ssim"])
    jsonschema.validate(json.loads((tmp_path / "out" / "report.json").read_text()), SCHEMA)
    ref = KDMPredictor.from_weights(PredictWeights.from_dir(tiny_weights), device="cpu", precision="fp32")
    q = ref.predict(phantom_study.dicom, opts(phantom_study))
    assert np.abs(p.frames - q.frames).mean() < 0.02


def test_ed_prediction_reverses_source_and_target(predictor, phantom_study):
    p = predictor.predict(phantom_study.dicom, opts(phantom_study, phase="ed"))
    assert (p.source_frame, p.target_frame) == (phantom_study.es[0], phantom_study.ed[0])
    assert p.report["ef"]["target_keypoints"] == pytest.approx(p.report["ef"]["source_beat"])


def test_source_frame_picks_the_nearest_target(predictor, phantom_study):
    src = phantom_study.ed[0] + 2
    p = predictor.predict(phantom_study.dicom, opts(phantom_study, source_frame=src))
    assert p.source_frame == src and p.target_frame == phantom_study.es[0]


def test_sequence_scales_one_flow(predictor, phantom_study):
    p = predictor.predict(phantom_study.dicom, opts(phantom_study, frames=4))
    assert p.alphas == [0.25, 0.5, 0.75, 1.0] and p.frames.shape[0] == 4
    np.testing.assert_allclose(p.flows[1], 0.5 * p.flows[3], atol=1e-4)
    assert [f["alpha"] for f in p.report["frames"]] == p.alphas


def test_target_ef_comes_from_the_prior(predictor, phantom_study):
    p = predictor.predict(phantom_study.dicom, opts(phantom_study, target_ef=35))
    assert p.target_frame is None and p.report["image_metrics"] is None
    ef = p.report["ef"]  # the tiny random models measure nonsense EFs: only where the keypoints come from is tested
    assert ef["calibration"]["tried"][0][0] == 35  # the prior's keypoints at the request first
    assert ef["target_keypoints"] == pytest.approx(ef["calibration"]["keypoints_ef"], abs=1.0)
    assert ef["calibration"]["keypoints_ef"] in [t[0] for t in ef["calibration"]["tried"]]
    assert "prior" in p.report["weights"]


def test_keypoint_file_sets_the_target(predictor, phantom_study, tmp_path):
    kps = extract_keypoints(phantom_study.labels[phantom_study.es[0]], 40) + (1.5, 0.5)
    save_keypoints(
        tmp_path / "edited.json",
        KeypointTrack(kps[None], [phantom_study.es[0]], image_size=(128, 128), phases={phantom_study.es[0]: "ES"}),
    )
    p = predictor.predict(phantom_study.dicom, opts(phantom_study, keypoints=str(tmp_path / "edited.json")))
    np.testing.assert_allclose(p.target_keypoints, kps)
    assert p.report["request"]["mode"] == "keypoints"


def test_endocardial_keypoint_file_gets_a_moving_wall(predictor, phantom_study, tmp_path):
    from echokdm.keypoints import myocardial_area

    es = phantom_study.es[0]
    endo = extract_keypoints(phantom_study.labels[es], 20)  # an EchoNet-style tracing: no epicardium
    save_keypoints(tmp_path / "traced.json", KeypointTrack(endo[None], [es], image_size=(128, 128)))
    p = predictor.predict(phantom_study.dicom, opts(phantom_study, keypoints=str(tmp_path / "traced.json")))
    assert p.target_keypoints.shape == (40, 2)
    np.testing.assert_allclose(p.target_keypoints[:20], endo)
    assert myocardial_area(p.target_keypoints) == pytest.approx(myocardial_area(p.source_keypoints), rel=1e-3)
    true_epi = extract_keypoints(phantom_study.labels[es], 40)[20:]
    moved = np.linalg.norm(p.target_keypoints[20:] - true_epi, axis=1).mean()
    static = np.linalg.norm(p.source_keypoints[20:] - true_epi, axis=1).mean()
    assert moved < 0.7 * static  # the wall follows the cavity towards the true ES wall


def test_ef_of_the_prediction_and_all_files(oracle, phantom_study, tmp_path):
    out = tmp_path / "out"
    p = predict_study(
        phantom_study.dicom, out, opts(phantom_study, frames=2), predictor=oracle, command="echokdm predict ..."
    )
    rep = json.loads((out / "report.json").read_text())
    jsonschema.validate(rep, SCHEMA)
    assert rep["ef"]["prediction"] is not None and rep["ef"]["consistency"]["seg_vs_keypoints"] >= 0
    assert rep["image_metrics"]["copy_source"]["dice"] == pytest.approx(
        2
        * ((phantom_study.labels[p.source_frame] == 1) & (phantom_study.labels[p.target_frame] == 1)).sum()
        / ((phantom_study.labels[p.source_frame] == 1).sum() + (phantom_study.labels[p.target_frame] == 1).sum()),
        rel=1e-5,
    )
    for name in ("prediction.dcm", "sequence.gif", "comparison.png", "flow.png", "flow.npy", "flow.nii.gz",
                 "segmentation.nii.gz", "keypoints.json", "report.csv", "frames/frame_000.png", "frames/frame_001.png"):
        assert (out / name).is_file(), name
    np.testing.assert_array_equal(np.load(out / "flow.npy"), p.flows)
    assert rep["command"] == "echokdm predict ..." and rep["timings_s"]["write"] > 0
    # keypoints.json goes back in as --keypoints and asks for the same target
    q = oracle.predict(phantom_study.dicom, opts(phantom_study, keypoints=str(out / "keypoints.json")))
    np.testing.assert_allclose(q.target_keypoints, p.target_keypoints)


def test_segmentation_and_flow_files_round_trip(oracle, phantom_study, tmp_path):
    import nibabel as nib

    from echokdm.io import read_segmentation

    p = predict_study(phantom_study.dicom, tmp_path / "o", opts(phantom_study, frames=2), predictor=oracle)
    np.testing.assert_array_equal(read_segmentation(tmp_path / "o" / "segmentation.nii.gz"), p.labels)
    img = nib.load(tmp_path / "o" / "flow.nii.gz")
    assert img.shape == (128, 128, 2, 1, 2) and img.header.get_intent()[0] == "vector"
    np.testing.assert_allclose(np.asarray(img.dataobj)[..., 0, :].transpose(2, 3, 1, 0), p.flows)


def test_target_ef_is_solved_on_the_loops_spacing(predictor, phantom_study, tmp_path):
    """The prior is asked for the EF on the loop's own pixels, the EF the report gives (non-square here)."""
    from echokdm.io import read_cine, write_cine_dicom

    _, meta = read_cine(phantom_study.dicom)
    dicom = tmp_path / "anisotropic.dcm"
    write_cine_dicom(dicom, phantom_study.frames, frame_time_ms=meta["frame_time_ms"], spacing_mm=(0.25, 0.5))
    p = predictor.predict(dicom, PredictOptions(seg=str(phantom_study.labels_nii), steps=1, target_ef=35))
    assert p.report["input"]["spacing_mm"] == [0.25, 0.5]
    cal = p.report["ef"]["calibration"]
    assert cal["tried"][0][0] == 35 and cal["requested"] == 35
    assert p.report["ef"]["target_keypoints"] == pytest.approx(cal["keypoints_ef"], abs=0.01)


def test_target_ef_is_calibrated_on_the_prediction(oracle, phantom_study):
    """The keypoint EF is solved so that the prediction measures the request; the report's prediction is the
    calibration's best (same seed, same pixels), its keypoints those of the EF used."""
    p = oracle.predict(phantom_study.dicom, opts(phantom_study, target_ef=30))
    ef = p.report["ef"]
    cal = ef["calibration"]
    assert ef["prediction"] is not None and ef["prediction"] == pytest.approx(cal["measured"], abs=1e-9)
    assert ef["target_keypoints"] == pytest.approx(cal["keypoints_ef"], abs=0.01)
    assert cal["low"] <= cal["keypoints_ef"] <= cal["high"]
    measured = [m for _, m in cal["tried"] if m is not None]
    assert abs(cal["measured"] - 30) == min(abs(m - 30) for m in measured)
    assert oracle.predict(phantom_study.dicom, opts(phantom_study, target_ef=30)).report["ef"]["calibration"] == cal


def test_input_is_read_once_before_any_model(phantom_study, tmp_path, monkeypatch):
    """A broken DICOM fails before the models load (weights that would fail to load are never reached); a good
    one is opened once for its frames, header and hash."""
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(phantom_study.dicom.read_bytes()[:3000])
    with pytest.raises(InputError, match="broken.dcm"):
        predict_study(broken, tmp_path / "o", opts(phantom_study), weights=PredictWeights(k2f="nope"))
    assert not (tmp_path / "o").exists()
    opened = []

    def counting(file, *args, **kwargs):
        if Path(str(file)).resolve() == phantom_study.dicom.resolve():
            opened.append(file)
        return real_open(file, *args, **kwargs)

    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", counting)
    monkeypatch.setattr(io, "open", counting)
    from echokdm.predict import read_input

    inp = read_input(phantom_study.dicom, opts(phantom_study))
    assert len(opened) == 1 and inp.header.Modality == "US"
    assert inp.sha256 == sha256(phantom_study.dicom.read_bytes()).hexdigest()


def test_bad_options_are_clear(phantom_study):
    with pytest.raises(InputError, match="between 5 and 90"):
        PredictOptions(target_ef=92)
    with pytest.raises(InputError, match="one target"):
        PredictOptions(phase="es", target_ef=40)
    with pytest.raises(InputError, match="frames"):
        PredictOptions(frames=0)
    with pytest.raises(InputError, match="k2f_steps must be an integer from 1 to 1000, got 0"):
        PredictOptions(k2f_steps=0)


def test_beat_and_segmentation_errors(predictor, phantom_study, tmp_path):
    flat = tmp_path / "flat.nii.gz"
    write_label_sequence(flat, np.repeat(phantom_study.labels[:1], len(phantom_study.labels), 0))
    with pytest.raises(InputError, match="no detectable heart beat"):
        predictor.predict(phantom_study.dicom, PredictOptions(seg=str(flat), steps=1))
    short = tmp_path / "short.nii.gz"
    write_label_sequence(short, phantom_study.labels[:-1])
    with pytest.raises(InputError, match="must label every frame"):
        predictor.predict(phantom_study.dicom, PredictOptions(seg=str(short), steps=1))
    with pytest.raises(InputError, match="beyond the loop"):
        predictor.predict(phantom_study.dicom, opts(phantom_study, source_frame=99))


def test_missing_weights_are_clear(tiny_weights, tmp_path):
    from echokdm.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match=r"ships no weights named .*\bnope\b"):
        KDMPredictor.from_weights(PredictWeights(k2f="nope"))
    (tmp_path / "w").mkdir()
    with pytest.raises(InputError, match="lacks seg_a4c.safetensors"):
        PredictWeights.from_dir(tmp_path / "w")
