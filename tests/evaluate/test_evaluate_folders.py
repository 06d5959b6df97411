"""Evaluation cases from data folders in the layouts the phantom writes (CAMUS, EchoNet-Dynamic, DICOM)."""

from types import SimpleNamespace

import numpy as np
import pytest

from echokdm.errors import InputError
from echokdm.evaluate.cases import folder_cases, resolve_cases
from echokdm.evaluate.run import run_evaluation
from echokdm.outputs import OutputDir
from echokdm.phantom import layouts as L
from echokdm.phantom import sample_params, simulate


@pytest.fixture(scope="module")
def loop():
    return simulate(sample_params(2000001, size=112, n_beats=1, **L.layout_overrides("echonet")))


@pytest.fixture(scope="module")
def folders(tmp_path_factory, loop):
    root = tmp_path_factory.mktemp("data")
    for layout in ("camus", "echonet", "dicom"):
        out = OutputDir(root / layout)
        if layout == "camus":
            rows = [L.write_camus_patient(out, 1, loop, "test")]
        elif layout == "echonet":
            rows = [L.write_echonet_video(out, loop, "test")]
            L.write_echonet_tables(out, rows)
        else:
            rows = [L.write_dicom_loop(out, "loop000", loop, "test")]
        L.write_manifest(out, rows)
    return root


@pytest.mark.parametrize("layout", ["camus", "echonet", "dicom"])
def test_folder_cases_match_the_loop(folders, loop, layout):
    (ref,) = folder_cases(folders / layout, 112)
    case = ref.load()
    ed, es = loop.ed[0], loop.es[0]
    assert case.es - case.ed == es - ed
    tol = 0.1 if layout == "echonet" else 1 / 255  # MJPG vs lossless uint8
    assert np.abs(case.frames[case.ed] - loop.frames[ed])[loop.sector_mask].mean() < tol / 2
    assert np.abs(case.frames[case.es] - loop.frames[es]).max() <= tol
    cavity_true = loop.labels[es] == 1
    assert ((case.labels[case.es] == 1) == cavity_true).mean() > 0.99
    assert (case.spacing_mm is None) == (layout == "echonet")
    assert (case.ddf_from_ed is not None) == (layout == "dicom")
    if layout == "dicom":
        assert np.abs(case.ddf_from_ed[case.es] - loop.ddf_from_ed[es]).max() < 0.01  # float16 on disk
        assert case.spacing_mm == pytest.approx(loop.spacing_mm)
    if layout == "camus":
        assert set(case.labels) == set(range(es - ed + 1))  # the half sequence is labelled throughout


def test_folder_cases_are_resized(folders, loop):
    case = folder_cases(folders / "dicom", 64)[0].load()
    assert case.frames.shape[1:] == (64, 64) and case.sector_mask.shape == (64, 64)
    assert case.spacing_mm == pytest.approx(np.array(loop.spacing_mm) * 112 / 64)
    es = loop.es[0]
    assert np.abs(case.ddf_from_ed[case.es]).max() == pytest.approx(
        np.abs(loop.ddf_from_ed[es]).max() * 64 / 112, rel=0.1
    )


def test_evaluate_a_dicom_folder_with_the_oracle(folders, tmp_path):
    res = run_evaluation(str(folders / "dicom"), tmp_path / "r", segmenter="atlas", size=112)
    rows = res.table.set_index("predictor")
    assert (
        rows.loc["oracle", "ssim"] > rows.loc["tps", "ssim"] and rows.loc["oracle", "ssim"] > rows.loc["copy", "ssim"]
    )


def test_unknown_folders_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a data folder"):
        resolve_cases(str(tmp_path / "empty"), 128)
    with pytest.raises(InputError, match="no such file or folder"):
        resolve_cases(str(tmp_path / "missing"), 128)


def test_camus_biplane_ef_against_the_info_files(folders, loop, tmp_path):
    import pandas as pd

    from echokdm.evaluate.biplane import camus_biplane

    class Truth:  # a segmenter that returns the phantom's labels of the half sequence
        def __call__(self, frames, *, sector_mask, spacing_mm=None, atlas=None):
            ed, es = loop.ed[0], loop.es[0]
            return np.where(loop.labels[ed : es + 1] <= 3, loop.labels[ed : es + 1], 0).astype(np.uint8)

    table = camus_biplane(folders / "camus", Truth())
    (row,) = table.to_dict("records")
    assert row["patient"] == "patient0001" and row["error"] == ""
    assert row["ef_biplane_seg"] == pytest.approx(row["ef_biplane_truth"], rel=1e-9)
    assert row["ef_biplane_truth"] == pytest.approx(row["ef_reported"], abs=6.0)  # phantom EF: exact volumes
    res = run_evaluation(str(folders / "camus"), tmp_path / "r", predictors=["copy"], segmenter="atlas", size=112)
    written = pd.read_csv(tmp_path / "r" / "biplane.csv")
    assert written["ef_biplane_truth"].iloc[0] == pytest.approx(row["ef_biplane_truth"])
    assert "the atlas segmenter needs" in written["error"].iloc[0]  # no atlas frame outside a task
    assert "Biplane Simpson EF against the reported EF" in res.summary.read_text()


def test_echonet_tracings_get_a_wall_for_40_keypoints(folders, loop, tmp_path):
    from echokdm.evaluate.tasks import make_sample
    from echokdm.keypoints import extract_keypoints, myocardial_area
    from echokdm.segmenter import BuiltinSegmenter

    (ref,) = folder_cases(folders / "echonet", 112)
    case = ref.load()
    assert not any((lab == 2).any() for lab in case.labels.values())  # cavity tracings only
    with pytest.raises(InputError, match="traced without it"):
        make_sample(case, "es", n_keypoints=40)
    sample = make_sample(case, "es", n_keypoints=40, myocardium=BuiltinSegmenter())
    true_es = extract_keypoints(loop.labels[loop.es[0]], 40)
    np.testing.assert_allclose(sample.source_keypoints[:20], extract_keypoints(case.labels[case.ed], 20))
    assert myocardial_area(sample.target_keypoints[0]) == pytest.approx(myocardial_area(sample.source_keypoints), 1e-3)
    err = np.linalg.norm(sample.target_keypoints[0][20:] - true_es[20:], axis=1).mean()
    static = np.linalg.norm(sample.source_keypoints[20:] - true_es[20:], axis=1).mean()
    assert err < 0.7 * static  # measured: 1.35 px against 3.03 px for a wall left at its ED place
    res = run_evaluation(str(folders / "echonet"), tmp_path / "r", predictors=["copy", "tps"], n_keypoints=40,
                         segmenter="builtin", size=112)
    assert not res.table["skipped"].any() and res.table["ef_kp"].notna().all()
    atlas = run_evaluation(str(folders / "echonet"), tmp_path / "a", predictors=["copy"], n_keypoints=20,
                           segmenter="atlas", size=112)
    assert not atlas.table["skipped"].any()  # 20 keypoints need no wall
    assert "- keypoints: 20 (scored on these; KDM conditions on 40" in atlas.summary.read_text()


def test_models_condition_on_the_wall_at_20_keypoints(folders, tiny_weights, monkeypatch):
    """At 20 keypoints a sample is scored on the endocardium, and KDM is handed the 40 that --keypoints 40 makes of
    the tracings (the source's wall from the segmenter, the target's moved along); without a wall it takes the 20."""
    import echokdm.evaluate.kdm as kdm_module
    from echokdm.evaluate.tasks import make_sample, walled_keypoints
    from echokdm.predict import PredictWeights
    from echokdm.segmenter import BuiltinSegmenter

    case = folder_cases(folders / "echonet", 112)[0].load()
    at20 = make_sample(case, "es", n_keypoints=20, myocardium=BuiltinSegmenter())
    at40 = make_sample(case, "es", n_keypoints=40, myocardium=BuiltinSegmenter())
    assert at20.source_keypoints.shape == (20, 2) and at20.target_keypoints.shape == (1, 20, 2)
    source, targets = walled_keypoints(at20)
    np.testing.assert_allclose(source, at40.source_keypoints)
    np.testing.assert_allclose(targets, at40.target_keypoints)
    seen = []
    monkeypatch.setattr(kdm_module.KDMModel, "ef_check", None)  # the stub's frames are no images to measure
    monkeypatch.setattr(kdm_module, "kdm_on_source_grid", lambda pipe, src, sector, src_kps, tgt_kps, **kw: seen.append(
        (src_kps, tgt_kps)) or SimpleNamespace(frames=np.asarray(tgt_kps)[:, :1, :1]))
    kdm_module.KDMModel(steps=1, weights=PredictWeights.from_dir(tiny_weights))(at20)
    np.testing.assert_allclose(seen[0][0], at40.source_keypoints)
    np.testing.assert_allclose(seen[0][1], at40.target_keypoints)
    bare = make_sample(case, "es", n_keypoints=20)  # no wall segmenter (the atlas segmenter's evaluation)
    assert bare.source_wall_keypoints is None
    assert walled_keypoints(bare)[0] is bare.source_keypoints
