"""EchoKDMPipeline mechanics on small untrained models: shapes, determinism, schedulers, save/load."""

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from echokdm.errors import EchoKDMError
from echokdm.models.diffusion import sample, sampling_scheduler
from echokdm.models.f2i import build_f2i_unet, f2i_condition
from echokdm.models.flow_ae import build_flow_autoencoder
from echokdm.models.k2f import build_k2f_unet
from echokdm.pipeline import EchoKDMPipeline
from echokdm.weights import WEIGHTS_DIR

SIZE = 32


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    parts = [build_flow_autoencoder(SIZE), build_k2f_unet(SIZE // 4), build_f2i_unet(SIZE)]
    return EchoKDMPipeline(*[m.eval() for m in parts], sampling_scheduler(False), sampling_scheduler(True))


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    th = np.linspace(0, np.pi, 20)
    src_kps = np.stack([16 + 6 * np.cos(th), 8 + 12 * np.sin(th)], 1)
    return rng.random((SIZE, SIZE), dtype=np.float32), src_kps, src_kps * 0.9 + 1.0


def test_call_shapes_and_range(pipe, inputs):
    out = pipe(*inputs, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, SIZE, SIZE) and out.flows.shape == (1, 2, SIZE, SIZE)
    assert out.keypoint_flow.shape == (2, SIZE, SIZE) and out.warped.shape == (1, SIZE, SIZE)
    assert out.frames.min() >= 0 and out.frames.max() <= 1


def test_same_generator_same_pixels(pipe, inputs):
    a = pipe(*inputs, num_inference_steps=2, generator=torch.Generator().manual_seed(3)).frames
    b = pipe(*inputs, num_inference_steps=2, generator=torch.Generator().manual_seed(3)).frames
    c = pipe(*inputs, num_inference_steps=2, generator=torch.Generator().manual_seed(4)).frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_k2f_and_f2i_run_their_own_step_counts(pipe, inputs):
    """``k2f_steps`` sets K2F's steps alone: the flow is generate_flow's at that count, whatever F2I runs."""
    def run(k2f_steps, f2i_steps):
        g = torch.Generator().manual_seed(0)
        return pipe(*inputs, num_inference_steps=f2i_steps, k2f_steps=k2f_steps, generator=g)

    src, kps_src, kps_tgt = pipe._inputs(*inputs)
    for k2f_steps in (1, 3):
        want = pipe.generate_flow(src, kps_src, kps_tgt, k2f_steps, torch.Generator().manual_seed(0)).flow[0]
        for f2i_steps in (1, 2):
            np.testing.assert_allclose(run(k2f_steps, f2i_steps).flows[0], want.numpy(), atol=1e-6)
    assert not np.allclose(run(1, 2).flows, run(3, 2).flows)


def test_sequence_scales_one_flow(pipe, inputs):
    alphas = [0.25, 0.5, 1.0]
    out = pipe(*inputs, alphas=alphas, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (3, SIZE, SIZE)
    np.testing.assert_allclose(out.flows[0], 0.25 * out.flows[2], atol=1e-5)
    np.testing.assert_allclose(out.flows[1], 0.5 * out.flows[2], atol=1e-5)


def test_strength_runs_the_last_steps_of_the_schedule(pipe):
    cond = torch.rand(3, 4, SIZE, SIZE)

    def run(strength, scheduler=None, items=slice(None)):
        g = torch.Generator().manual_seed(5)
        return sample(
            pipe.f2i_unet, scheduler or pipe.f2i_scheduler, cond[items], 1, 4, g, shared_noise=True, strength=strength
        )

    full = run(None)
    assert torch.equal(run([1.0, 1.0, 1.0]), full)  # strength 1 is plain sampling from noise
    mixed = run([1.0, 0.5, 0.2])  # 4, 2 and 0 steps
    # (batches of other sizes may differ in the last float bits)
    assert torch.allclose(mixed[0], full[0], atol=1e-5) and (mixed[1] - full[1]).abs().max() > 1e-3
    assert torch.allclose(mixed[1], run([0.5], items=slice(1, 2))[0], atol=1e-5)  # other strengths do not interfere
    assert not mixed[2].any()  # no step: the zero sample
    dpm = DPMSolverMultistepScheduler.from_config(pipe.f2i_scheduler.config)  # a multistep solver keeps state
    assert torch.isfinite(run([1.0, 0.5, 0.75], dpm)).all()


def test_sequence_frames_near_the_source_are_only_warped(pipe, inputs):
    out = pipe(*inputs, alphas=[0.05, 1.0], num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(out.frames[0], np.clip(out.warped[0], 0, 1), atol=1e-6)
    assert np.abs(out.frames[1] - out.warped[1]).max() > 1e-3


def test_sequence_residuals_are_faded_by_alpha(pipe, inputs):
    alphas = [0.5, 1.0]
    out = pipe(*inputs, alphas=alphas, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    # replay the pipeline's random draws: K2F's noise first, then F2I's
    g = torch.Generator().manual_seed(0)
    src, kps_src, kps_tgt = pipe._inputs(*inputs)
    trust = pipe.generate_flow(src, kps_src, kps_tgt, 4, g).trust[:, 0].numpy()
    cond, _ = f2i_condition(src.expand(2, -1, -1, -1), torch.from_numpy(out.flows))
    residual = sample(pipe.f2i_unet, pipe.f2i_scheduler, cond, 1, 4, g, shared_noise=True, strength=alphas)[
        :, 0
    ].numpy()
    expected = np.clip(out.warped + residual * np.reshape(alphas, (-1, 1, 1)) * trust, 0, 1)
    np.testing.assert_allclose(out.frames, expected, atol=1e-5)
    assert np.abs(residual[0]).max() > 1e-3  # the fade has something to act on


def test_scheduler_is_swappable(pipe, inputs, tmp_path):
    dpm = DPMSolverMultistepScheduler.from_config(pipe.f2i_scheduler.config)
    swapped = EchoKDMPipeline(pipe.flow_vae, pipe.k2f_unet, pipe.f2i_unet, pipe.k2f_scheduler, dpm)
    out = swapped(*inputs, num_inference_steps=3, k2f_steps=3, generator=torch.Generator().manual_seed(0))
    # replay with a fresh DPM solver for F2I: the swapped scheduler is the one that rendered the frame
    g = torch.Generator().manual_seed(0)
    src, kps_src, kps_tgt = pipe._inputs(*inputs)
    flow, _, trust = pipe.generate_flow(src, kps_src, kps_tgt, 3, g)
    fresh = DPMSolverMultistepScheduler.from_config(pipe.f2i_scheduler.config)
    cond, warped = f2i_condition(src, flow)
    residual = sample(pipe.f2i_unet, fresh, cond, 1, 3, g, shared_noise=True, strength=[1.0]) * trust
    np.testing.assert_allclose(out.frames, np.clip((warped + residual)[:, 0].numpy(), 0, 1), atol=1e-5)
    swapped.save_pretrained(tmp_path)  # and the swap survives a save/load round trip
    assert isinstance(EchoKDMPipeline.from_pretrained(tmp_path).f2i_scheduler, DPMSolverMultistepScheduler)


def test_save_and_load_round_trip(pipe, inputs, tmp_path):
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").exists()
    assert list(tmp_path.glob("*/*.safetensors")) and not list(tmp_path.glob("*/*.bin"))
    loaded = EchoKDMPipeline.from_pretrained(tmp_path)
    a = pipe(*inputs, num_inference_steps=2, generator=torch.Generator().manual_seed(1)).frames
    b = loaded(*inputs, num_inference_steps=2, generator=torch.Generator().manual_seed(1)).frames
    c = EchoKDMPipeline.from_pretrained(tmp_path)(
        *inputs, num_inference_steps=2, generator=torch.Generator().manual_seed(1)
    ).frames
    # a reloaded module may pick another (numerically equivalent) kernel; two loads agree bit for bit
    np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_array_equal(b, c)


@pytest.mark.parametrize("alphas", [[0.0], [1.5], []])
def test_bad_alphas_are_clear_errors(pipe, inputs, alphas):
    with pytest.raises(EchoKDMError, match="alphas"):
        pipe(*inputs, alphas=alphas, num_inference_steps=1)


def test_wrong_size_and_keypoint_count(pipe, inputs):
    src, a, b = inputs
    with pytest.raises(EchoKDMError, match="must be"):
        pipe(np.zeros((SIZE + 1, SIZE), np.float32), a, b, num_inference_steps=1)
    with pytest.raises(EchoKDMError, match="differ in count"):
        pipe(src, a, b[:-1], num_inference_steps=1)


def test_from_pretrained_default_is_the_shipped_model(tmp_path):
    shipped = EchoKDMPipeline.from_pretrained()
    assert shipped.sample_size == 112
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("kdm_flow_vae", "kdm_k2f", "kdm_f2i"):
        (folder / f"{name}.safetensors").write_bytes((WEIGHTS_DIR / f"{name}.safetensors").read_bytes())
    from_folder = EchoKDMPipeline.from_pretrained(folder)
    for a, b in zip(shipped.k2f_unet.state_dict().values(), from_folder.k2f_unet.state_dict().values()):
        assert torch.equal(a, b)


def test_from_pretrained_unknown_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EchoKDMError, match="neither a saved EchoKDMPipeline"):
        EchoKDMPipeline.from_pretrained(tmp_path)
