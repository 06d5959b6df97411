"""``echokdm train ofnet|f2i --data cine-folder:DIR``: self-supervised pairs of a user's own cines (phantom-written
DICOM folders here), mixed with phantom pairs; the pairs really come from the folder, and the run's weights load
where predict and evaluate take them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from echokdm.cli import main
from echokdm.config import load_config
from echokdm.errors import EchoKDMError, InputError
from echokdm.grid import SectorFit
from echokdm.io import load_cine
from echokdm.models.loading import load_ofnet
from echokdm.phantom.layouts import generate
from echokdm.train.kdm import F2ITask, OFNetTask
from echokdm.train.pairs import cine_pairs
from echokdm.train.registry import task_class
from echokdm.train.sources import SourceConfig, source_loops

SIZE = 64
FRAMES = 6


@pytest.fixture(scope="module")
def cines(tmp_path_factory):
    """Two folders of one phantom cine each (nested, with the generator's non-DICOM files beside them)."""
    root = tmp_path_factory.mktemp("cines")
    generate(root / "a" / "deep", 1, "dicom", size=96, frames=FRAMES, seed=0)
    generate(root / "b", 1, "dicom", size=96, frames=FRAMES, seed=5)
    return root


def _task(cls, tmp_path, sources, **data):
    """A task of ``cls`` at a tiny size on ``sources`` (OF-net: a tiny network)."""
    config = {
        "train": {"batch_size": 2, "threads": 1, "tensorboard": False},
        "data": {"size": SIZE, "every": 2, "val_loops": 0, "cache_dir": str(tmp_path / "cache"), "sources": sources,
                 **data},
    }  # fmt: skip
    if cls is OFNetTask:
        config["model"] = {"channels": [4, 8]}
    return cls(load_config(config, cls.config_class))


def test_cine_pairs_are_the_folder_frames_on_the_working_grid(cines):
    loops = source_loops(SourceConfig("cine-folder", str(cines / "a"), "all"))
    assert len(loops) == 1 and loops[0]["name"].endswith("phantom_0000000.dcm")
    ps = cine_pairs(loops, SIZE, every=2, max_gap=3)
    # sources 0, 2, 4 of 6 frames; targets within 3 frames on either side
    assert ps.pairs.tolist()[:3] == [[0, 1], [0, 2], [0, 3]] and len(ps.pairs) == 3 + 5 + 4
    cine = load_cine(loops[0]["name"])
    fit = SectorFit.from_mask(cine.meta["sector_mask"], SIZE)
    expected = fit.to_work(torch.as_tensor(np.asarray(cine[0]) * cine.meta["sector_mask"])[:, None])[:, 0]
    np.testing.assert_allclose(ps.frames / 255, expected.clamp(0, 1).numpy(), atol=1 / 255 + 1e-6)
    other = cine_pairs(source_loops(SourceConfig("cine-folder", str(cines / "b"), "all")), SIZE, 2, 3)
    assert np.abs(other.frames.astype(int) - ps.frames).mean() > 3  # another folder, other pixels


def test_ofnet_and_f2i_train_on_cine_pairs_mixed_with_phantom_pairs(cines, tmp_path):
    folder = {"kind": "cine-folder", "path": str(cines), "split": "all"}
    ofnet = _task(OFNetTask, tmp_path, [folder]).train_dataset()
    ps = cine_pairs(source_loops(SourceConfig(**folder)), SIZE, every=2)
    assert len(ofnet) == len(ps.pairs)  # both cines of the folder, nothing else
    got = sorted(tuple(ofnet[i]["source"][0, ::8, ::8].flatten().tolist()) for i in range(len(ofnet)))
    want = sorted(tuple((ps.frames[s, ::8, ::8] / 255).astype(np.float32).flatten().tolist()) for s, _ in ps.pairs)
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-6)

    mixed = _task(F2ITask, tmp_path, [folder, {"kind": "phantom", "path": "1", "weight": 0.5}]).train_dataset()
    real, phantom = mixed.datasets
    assert len(real) == len(ps.pairs) and len(phantom) >= 1
    assert set(mixed[0]) == {"source", "target", "sector", "model_flow"} == set(mixed[len(mixed) - 1])
    item = real[0]  # F2I's flow of a real pair is the shipped OF-net's estimate on that pair
    with torch.no_grad():
        flow = load_ofnet("ofnet")(item["source"][None], item["target"][None])[0]
    torch.testing.assert_close(item["model_flow"], flow, atol=2e-2, rtol=0)


def test_k2f_learns_from_the_segmenters_keypoints_of_the_cines_with_ofnet_flows(cines, tmp_path):
    from echokdm.flow import keypoint_flow
    from echokdm.keypoints import extract_keypoints
    from echokdm.segmenter import BuiltinSegmenter

    folder = {"kind": "cine-folder", "path": str(cines / "a"), "split": "all"}
    ds = _task(task_class("k2f"), tmp_path, [folder]).train_dataset().datasets[0].dataset
    (loop,) = source_loops(SourceConfig(**folder))
    labels = BuiltinSegmenter()(loop["frames"], sector_mask=loop["mask"], frame_time_ms=loop["frame_time_ms"])
    fit = SectorFit.from_mask(loop["mask"], SIZE)
    usable = []
    for t, lab in enumerate(labels):
        try:
            usable.append((t, fit.points_to_work(extract_keypoints(lab, 40))))
        except EchoKDMError:
            continue
    assert len(usable) >= 2 and len(ds) == len(ds.p.pairs) > 0
    kps = dict(usable)
    assert {int(t) for t in ds.p.pairs.ravel()} <= set(kps)  # frames without keypoints make no pair
    s, t = (int(v) for v in ds.p.pairs[0])
    item = ds[0]
    np.testing.assert_allclose(item["src_kps"].numpy(), kps[s], atol=1e-4)
    np.testing.assert_allclose(item["tgt_kps"].numpy(), kps[t], atol=1e-4)
    np.testing.assert_allclose(item["kp_flow"].numpy(), keypoint_flow(kps[s], kps[t], (SIZE, SIZE)), atol=2e-2)
    assert {"model_flow", "kp_flow", "src_kps"} <= set(item)  # K2F's target: OF-net's flow minus the keypoint flow


def test_cine_sources_refuse_flows_they_do_not_have_and_empty_splits(cines, tmp_path, capsys):
    folder = {"kind": "cine-folder", "path": str(cines), "split": "all"}
    for name in ("f2i", "k2f", "flowae"):
        with pytest.raises(InputError, match="no exact flow; set data.flow_source: ofnet"):
            _task(task_class(name), tmp_path, [folder], flow_source="truth")
    with pytest.raises(InputError, match="no cine in split"):
        _task(OFNetTask, tmp_path, [{**folder, "split": "test"}]).train_dataset()
    truth = tmp_path / "truth.yaml"
    truth.write_text("data: {flow_source: truth}\n")
    out = tmp_path / "refused"
    assert main(["train", "k2f", "--config", str(truth), "--data", f"cine-folder:{cines}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "set data.flow_source: ofnet" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_f2i_on_cines_with_k2f_flows_of_the_segmenters_keypoints(cines, tmp_path):
    from echokdm.pipeline import EchoKDMPipeline

    folder = {"kind": "cine-folder", "path": str(cines / "a"), "split": "all"}
    ds = _task(F2ITask, tmp_path, [folder], flow_source="k2f").train_dataset().datasets[0].dataset
    assert ds.p.keypoints is not None and len(ds) > 0
    n = min(len(ds), 32)  # the first batch of pairs: the shipped K2F from their keypoints, seeded by train.seed
    items = [ds[i] for i in range(n)]
    with torch.no_grad():
        flow, kp_flow, _ = EchoKDMPipeline.from_weights().generate_flow(
            *(torch.stack([it[k] for it in items]) for k in ("source", "src_kps", "tgt_kps")), 10,
            torch.Generator().manual_seed(0))
    got = torch.stack([it["model_flow"] for it in items])
    torch.testing.assert_close(got, flow, atol=2e-2, rtol=0)
    torch.testing.assert_close(torch.stack([it["kp_flow"] for it in items]), kp_flow, atol=2e-2, rtol=0)
    assert (got - kp_flow).abs().mean() > 1e-3  # K2F's correction is there


def test_cli_fine_tunes_f2i_on_a_cine_folder_and_predict_and_evaluate_take_it(cines, tmp_path, capsys):
    from echokdm.evaluate.report import build_predictor, evaluation_kdm_weights
    from echokdm.predict import PredictWeights
    from echokdm.weights import WEIGHTS_DIR, load

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "train": {"batch_size": 4, "lr": 1e-4, "threads": 1, "tensorboard": False},
        "data": {"every": 3, "val_loops": 0, "sources": [{"kind": "cine-folder", "path": str(cines), "split": "all"}]},
    }))  # fmt: skip
    out = tmp_path / "f2i_ft"
    assert main(["train", "f2i", "--config", str(cfg), "--init", "kdm_f2i", "--epochs", "1", "--out", str(out)]) == 0
    assert "trained f2i for 1 epochs" in capsys.readouterr().out
    weights = PredictWeights.from_dir(out)
    assert weights.f2i == str(out / "model.safetensors") and weights.k2f == PredictWeights.k2f
    tuned, shipped = load(weights.f2i).state_dict, load("kdm_f2i").state_dict
    assert set(tuned) == set(shipped) and any(not torch.equal(tuned[k].float(), shipped[k].float()) for k in tuned)
    kdm = build_predictor("kdm", evaluation_kdm_weights(str(out)))
    assert torch.equal(kdm.pipe.f2i_unet.state_dict()["conv_in.weight"].float(), tuned["conv_in.weight"].float())
    assert type(build_predictor("copy", evaluation_kdm_weights(str(out)))).__name__ == "CopyPredictor"
    with pytest.raises(InputError, match="--seg-weights"):  # a segmenter is not KDM weights
        evaluation_kdm_weights(str(WEIGHTS_DIR / "seg_a4c.safetensors"))


def test_k2f_trains_on_phantom_motion_carried_onto_the_cines_frames(cines, tmp_path):
    folder = {"kind": "cine-folder", "path": str(cines / "b"), "split": "all", "weight": 0.5}
    task = _task(task_class("k2f"), tmp_path, [], texture_sources=[folder], train_loops=1, every=10,
                 flow_source="truth")
    ds = task.train_dataset()
    phantom, texture = (part.p for part in ds.datasets)
    assert len(texture.pairs) == round(0.5 * len(phantom.pairs)) > 0
    (loop,) = source_loops(SourceConfig("cine-folder", str(cines / "b"), "all"))
    work = SectorFit.from_mask(loop["mask"], SIZE).to_work(torch.from_numpy(loop["frames"])[:, None])[:, 0]
    work = (work.clamp(0, 1) * 255).round().numpy()
    s = texture.pairs[0, 0]
    assert np.abs(work - texture.frames[s]).reshape(len(work), -1).max(1).min() == 0  # a frame of the cine
    assert {"flow", "kp_flow", "src_kps", "target"} <= set(ds[len(ds) - 1])
    with pytest.raises(InputError, match="flow_source: truth"):
        _task(task_class("k2f"), tmp_path, [], texture_sources=[folder], flow_source="ofnet")
