"""The KDM training chain on a tiny phantom set: OF-net -> flow AE -> K2F -> F2I (+ k2i) -> pipeline."""

import math

import numpy as np
import pytest
import torch

from echokdm.flow import warp
from echokdm.pipeline import EchoKDMPipeline
from echokdm.train.pairs import build_pairs, compose_pull
from echokdm.train.registry import train

SIZE = 96


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks."""
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture(scope="module")
def val_pairs():
    """The pairs of one validation loop every 6th frame, built once for the tests that read them."""
    return build_pairs("val", 1, SIZE, every=6)


def _config(tmp_path, **data):
    return {
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "threads": 1, "tensorboard": False},
        "data": {
            "size": SIZE,
            "train_loops": 1,
            "val_loops": 1,
            "every": 10,
            "cache_dir": str(tmp_path / "cache"),
            **data,
        },
    }


def test_pairs_hold_exact_flows(val_pairs):
    ps = val_pairs
    assert ps.frames.dtype == np.uint8 and ps.keypoints.shape[1:] == (40, 2)
    assert ps.flow.shape == (len(ps.pairs), 2, SIZE, SIZE)
    # the exact flow carries the source LV mask onto the target far better than no motion does
    gains = []
    for i, (s, t) in enumerate(ps.pairs):
        src, tgt = ps.labels[s] == 1, ps.labels[t] == 1
        moved = warp(src.astype(np.float32), ps.flow[i].astype(np.float32), mode="nearest").numpy() > 0.5
        gains.append(_dice(moved, tgt) - _dice(src, tgt))
        assert _dice(moved, tgt) > 0.85
    assert np.mean(gains) > 0


def test_compose_pull_of_two_shifts():
    a = np.zeros((2, 16, 16), np.float32)
    a[0] = 1.0
    b = np.zeros((2, 16, 16), np.float32)
    b[1] = -2.0
    np.testing.assert_allclose(
        compose_pull(a, b)[:, 4:-4, 4:-4], np.stack([np.ones((8, 8)), -2 * np.ones((8, 8))]), atol=1e-5
    )


def test_f2i_ssim_term_adds_to_the_denoising_loss():
    from echokdm.config import load_config
    from echokdm.train.kdm import F2IRunConfig, F2ITask

    torch.manual_seed(0)
    frames = torch.rand(2, 2, 1, 32, 32)
    batch = {"source": frames[0], "target": frames[1], "flow": torch.randn(2, 2, 32, 32)}

    def loss(weight):
        task = F2ITask(load_config({"data": {"size": 32, "crop": 0}, "loss": {"ssim_weight": weight}}, F2IRunConfig))
        torch.manual_seed(1)  # same timesteps and noise for both
        model = task.build_model()
        value = task.training_step(model, batch, torch.device("cpu"))
        value.backward()
        return float(value), model.conv_in.weight.grad.abs().sum()

    plain, with_ssim = loss(0.0), loss(0.5)
    assert with_ssim[0] > plain[0] + 0.05  # two unrelated noise images: 1 - SSIM is near 1
    assert torch.isfinite(with_ssim[1]) and with_ssim[1] > 0


def test_k2f_flows_carry_the_source_contours_onto_the_target(val_pairs):
    from echokdm.train.model_flows import k2f_flows

    ps = val_pairs
    # the shipped K2F works at 112; contours snap anyway
    flows = k2f_flows(EchoKDMPipeline.from_weights(), ps, seed=0, steps=10)
    assert flows.shape == (len(ps.pairs), 2, SIZE, SIZE) and flows.dtype == np.float16
    gains = []
    for i, (s, t) in enumerate(ps.pairs):
        src, tgt = ps.labels[s] == 1, ps.labels[t] == 1
        moved = warp(src.astype(np.float32), flows[i].astype(np.float32), mode="nearest").numpy() > 0.5
        assert _dice(moved, tgt) > 0.85
        gains.append(_dice(moved, tgt) - _dice(src, tgt))
    assert np.mean(gains) > 0.02


@pytest.mark.parametrize("task", ["flowae", "k2f"])
def test_k2f_flows_are_refused_where_they_would_be_circular(tmp_path, task):
    from echokdm.errors import EchoKDMError

    with pytest.raises(EchoKDMError, match="flow_source 'k2f' does not apply"):
        train(task, _config(tmp_path, flow_source="k2f"), tmp_path / task)


@pytest.mark.slow
def test_training_chain_builds_a_working_pipeline(val_pairs, tmp_path):
    of = train("ofnet", _config(tmp_path), tmp_path / "ofnet")
    assert math.isfinite(of.metrics["val_epe_lv"])
    ofw = str(of.out / "model.safetensors")
    ae = train("flowae", _config(tmp_path, ofnet_weights=ofw), tmp_path / "flowae")
    aew = str(ae.out / "model.safetensors")
    k2f = train("k2f", _config(tmp_path, ofnet_weights=ofw, flow_vae_weights=aew, val_steps=2), tmp_path / "k2f")
    assert math.isfinite(k2f.metrics["val_epe_lv"]) and math.isfinite(k2f.metrics["val_epe_lv_tps"])
    k2fw = str(k2f.out / "model.safetensors")
    # F2I on the flows the K2F just trained generates (what it gets at inference)
    f2i_cfg = _config(tmp_path, flow_source="k2f", flow_vae_weights=aew, k2f_weights=k2fw, val_steps=2)
    f2i = train("f2i", {**f2i_cfg, "loss": {"ssim_weight": 0.05}}, tmp_path / "f2i")
    assert f2i.metrics["val_psnr"] > 5
    k2i = train("k2i", _config(tmp_path, val_steps=2), tmp_path / "k2i")
    assert math.isfinite(k2i.metrics["val_psnr"])

    pipe = EchoKDMPipeline.from_weights(aew, k2fw, str(f2i.out / "model.safetensors"))
    ps = val_pairs
    s, t = ps.pairs[-1]
    out = pipe(ps.frames[s] / 255.0, ps.keypoints[s], ps.keypoints[t], alphas=[0.5, 1.0], num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (2, SIZE, SIZE) and np.isfinite(out.frames).all()


def test_k2f_learns_20_and_40_keypoints_in_one_network(val_pairs, tmp_path):
    from echokdm.config import load_config
    from echokdm.errors import InputError
    from echokdm.flow import keypoint_flow
    from echokdm.train.batch_keypoints import with_keypoints
    from echokdm.train.kdm import F2IRunConfig, F2ITask, K2FRunConfig, K2FTask
    from echokdm.train.pairs import PairDataset

    item = PairDataset(val_pairs)[0]
    batch = {k: v[None] for k, v in item.items()}
    endo = with_keypoints(batch, 20)  # the endocardial half, with the spline through those 20 alone
    assert endo["src_kps"].shape == (1, 20, 2) and torch.equal(endo["src_kps"][0], item["src_kps"][:20])
    np.testing.assert_allclose(
        endo["kp_flow"][0].numpy(), keypoint_flow(item["src_kps"][:20], item["tgt_kps"][:20], (SIZE, SIZE)), atol=1e-4
    )
    assert with_keypoints(batch, 40) is batch and torch.equal(endo["flow"], batch["flow"])

    cfg = load_config(_config(tmp_path, n_keypoints=[40, 20], flow_source="truth", val_steps=1), K2FRunConfig)
    task = K2FTask(cfg)
    assert task.keypoint_counts == (20, 40)
    seen = []
    task._correction = lambda b, device: seen.append(b["src_kps"].shape[1]) or torch.zeros(1, 2, SIZE, SIZE)
    model = task.build_model()
    torch.manual_seed(0)
    for _ in range(12):
        task.training_step(model, batch, torch.device("cpu"))
    assert set(seen) == {20, 40}  # each batch is conditioned on one of the counts
    del task._correction
    values = task.validation_step(model.eval(), batch, torch.device("cpu"))
    assert {"epe_lv", "epe_lv_kp20", "epe_lv_kp40", "epe_lv_tps_kp20", "epe_lv_tps_kp40"} <= set(values)
    torch.testing.assert_close(values["epe_lv"], (values["epe_lv_kp20"] + values["epe_lv_kp40"]) / 2)
    assert values["epe_lv_tps_kp20"].item() != values["epe_lv_tps_kp40"].item()  # each count has its own spline
    assert K2FTask(load_config(_config(tmp_path), K2FRunConfig)).keypoint_counts == (40,)  # one count as before
    with pytest.raises(InputError, match="takes one count"):
        F2ITask(load_config(_config(tmp_path, n_keypoints=[20, 40]), F2IRunConfig))
    with pytest.raises(InputError, match="20, 40 or a list"):
        K2FTask(load_config(_config(tmp_path, n_keypoints=[30]), K2FRunConfig))


def test_k2f_can_learn_from_moved_target_walls(val_pairs, tmp_path):
    """``data.moved_wall_prob``: that share of 40-keypoint training pairs gets the target wall predict and evaluate
    give (moved with the endocardium at constant area), the keypoint flow through it, and the true flow to learn."""
    from echokdm.config import load_config
    from echokdm.keypoints import myocardial_area
    from echokdm.train.batch_keypoints import with_keypoints, with_moved_walls
    from echokdm.train.kdm import K2FRunConfig, K2FTask
    from echokdm.train.pairs import PairDataset

    items = [PairDataset(val_pairs)[i] for i in range(2)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    moved = with_moved_walls(batch, torch.tensor([True, False]))
    src, tgt = batch["src_kps"][0].double().numpy(), moved["tgt_kps"][0].double().numpy()
    assert myocardial_area(tgt) == pytest.approx(myocardial_area(src), rel=1e-3)
    assert abs(myocardial_area(batch["tgt_kps"][0].double().numpy()) / myocardial_area(src) - 1) > 1e-2
    assert torch.equal(moved["tgt_kps"][0, :20], batch["tgt_kps"][0, :20])
    assert torch.equal(moved["tgt_kps"][1], batch["tgt_kps"][1])
    assert torch.equal(moved["kp_flow"][1], batch["kp_flow"][1])
    assert not torch.equal(moved["kp_flow"][0], batch["kp_flow"][0]) and torch.equal(moved["flow"], batch["flow"])
    endo = with_keypoints(batch, 20)
    assert with_moved_walls(endo, torch.tensor([True, True])) is endo  # 20 keypoints have no wall to move

    cfg = load_config(_config(tmp_path, flow_source="truth", moved_wall_prob=1.0), K2FRunConfig)
    task = K2FTask(cfg)
    seen = []
    task._correction = lambda b, device: seen.append(b["tgt_kps"]) or torch.zeros(2, 2, SIZE, SIZE)
    task.training_step(task.build_model(), batch, torch.device("cpu"))
    torch.testing.assert_close(seen[0], with_moved_walls(batch, torch.tensor([True, True]))["tgt_kps"])
