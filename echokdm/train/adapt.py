"""Per-study adaptation (``echokdm predict --adapt SECONDS``): fine-tune F2I on frame pairs of the input loop
itself before predicting, self-supervised as it is trained (:mod:`echokdm.train.kdm`), so the residual it adds
carries the study's own speckle and brightness. A scored target frame and its neighbours are left out.

F2I learns to render the loop's frames from (source, flow, target) pairs. The flows are those the shipped F2I was
trained on and gets at inference: K2F's, from the pairs' keypoints (of the loop's labels), generated once for a
fixed draw of pairs. A loop without labelled frames falls back to the paper's recipe: OF-net is tuned on the
loop's pairs by its photometric (LNCC) + smoothness loss, and F2I learns from its flows. On the two real loops
the K2F flows did better (``docs/predict.md``). K2F and the flow autoencoder stay as shipped.

The budget is deterministic: ``seconds`` becomes a step count by a fixed rate (:data:`STEPS_PER_SECOND`,
measured on a 2-core CPU), not by a timed calibration, so the same loop, seed and budget give the same
pixels on any machine that keeps up with the rate; ``seconds`` is also a wall-clock cap, and a run cut by it
says so (``capped``) because it is then no longer reproducible.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from echokdm.defaults import DEFAULT_STEPS, N_KEYPOINTS
from echokdm.errors import EchoKDMError, InputError
from echokdm.grid import SectorFit
from echokdm.keypoints import extract_keypoints
from echokdm.labels import camus_labels
from echokdm.models.diffusion import diffusion_loss, training_scheduler
from echokdm.models.f2i import f2i_condition, residual_target
from echokdm.models.loading import load_ofnet
from echokdm.models.ofnet import OFNetLoss
from echokdm.pipeline import EchoKDMPipeline
from echokdm.progress import progress

#: adaptation steps (one batch of :data:`BATCH` pairs, OF-net or F2I) per second of budget on a 2-core CPU
STEPS_PER_SECOND = 1.0
#: share of the steps spent on OF-net when its flows are used (the rest on F2I)
OFNET_SHARE = 0.25
#: at most this many batches of K2F flows, of FLOW_BATCH pairs each (a batch counts as one step)
MAX_FLOW_BATCHES = 4
FLOW_BATCH = 8
#: pairs per step
BATCH = 4
#: F2I trains on random square crops of this side (working pixels), as in ``echokdm train f2i``
CROP = 64
#: frames either side of a scored target that adaptation leaves out
EXCLUDE_RADIUS = 2
#: largest frame distance of a pair (ED -> ES spans about a third of a beat)
MAX_GAP = 12
#: Adam learning rates (a tenth of the training peak rates)
LR_OFNET = 2e-4
LR_F2I = 2e-4


@dataclass
class AdaptInfo:
    """What an adaptation did (the ``adapt`` section of the report).

    Attributes:
        seconds: the budget asked for (None: ``steps`` alone).
        steps: steps planned (K2F flow batches or OF-net steps, + F2I steps).
        steps_done: steps run (less than ``steps`` only when ``capped``).
        flows: where F2I's flows came from: ``"k2f"`` (the pairs' keypoints) or ``"ofnet"`` (no labels).
        flow_steps, ofnet_steps, f2i_steps: batches of K2F flows generated, OF-net and F2I steps run.
        pairs: number of (source, target) frame pairs drawn from.
        frames_used: loop frames the pairs are made of.
        excluded_frames: loop frames left out (the scored target and its neighbours).
        capped: the wall-clock budget stopped it before ``steps`` (the result is then not reproducible).
        wall_s: seconds it took.
        seed: seed of the pair draws, crops and noise.
    """

    seconds: float | None
    steps: int
    steps_done: int
    flows: str
    flow_steps: int
    ofnet_steps: int
    f2i_steps: int
    pairs: int
    frames_used: list[int]
    excluded_frames: list[int]
    capped: bool
    wall_s: float
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def plan_steps(seconds: float | None, steps: int | None = None) -> int:
    """Steps of an adaptation: ``steps`` when given, else ``seconds`` × :data:`STEPS_PER_SECOND`.

    Raises:
        InputError: neither given, or a negative / non-finite value.
    """
    if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
        raise InputError(f"--adapt takes a number of seconds >= 0, got {seconds:g}")
    if steps is not None and (int(steps) != steps or steps < 0):
        raise InputError(f"--adapt-steps takes a whole number >= 0, got {steps}")
    if steps is None and seconds is None:
        raise InputError("adaptation needs --adapt SECONDS or --adapt-steps N")
    return int(steps) if steps is not None else int(round(seconds * STEPS_PER_SECOND))


def excluded_frames(n_frames: int, target: int | None, radius: int = EXCLUDE_RADIUS) -> list[int]:
    """The scored ``target`` frame and its ``radius`` neighbours on each side (none when ``target`` is None)."""
    if target is None:
        return []
    return [t for t in range(target - radius, target + radius + 1) if 0 <= t < n_frames]


def loop_pairs(frames: Sequence[int], max_gap: int = MAX_GAP) -> np.ndarray:
    """(P, 2) ordered (source, target) pairs of distinct ``frames`` at most ``max_gap`` frames apart, both ways."""
    f = sorted(frames)
    return np.asarray([(s, t) for s in f for t in f if s != t and abs(s - t) <= max_gap], dtype=np.int64).reshape(-1, 2)


def _crop(size: int, generator: torch.Generator, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The same random ``size`` × ``size`` window of each (B, C, H, W) tensor, drawn from ``generator``."""
    h, w = tensors[0].shape[-2:]
    if size >= min(h, w):
        return tensors
    y0 = int(torch.randint(0, h - size + 1, (), generator=generator))
    x0 = int(torch.randint(0, w - size + 1, (), generator=generator))
    return tuple(t[..., y0 : y0 + size, x0 : x0 + size] for t in tensors)


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _working_keypoints(labels: Mapping[int, np.ndarray], frames: Sequence[int], fit: SectorFit) -> dict:
    """Frame -> (K, 2) float32 keypoints of its labels on the working grid, for the labelled ``frames`` whose LV
    gives keypoints."""
    out = {}
    for t in frames:
        if t not in labels:
            continue
        try:
            kp = extract_keypoints(camus_labels(np.asarray(labels[t])), N_KEYPOINTS)
        except EchoKDMError:  # no usable LV in this frame: it makes no pair
            continue
        out[t] = fit.points_to_work(kp).astype(np.float32)
    return out


def adapt_pipeline(
    pipeline: EchoKDMPipeline,
    frames: np.ndarray,
    sector: np.ndarray,
    exclude: Sequence[int] = (),
    seconds: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    labels: Mapping[int, np.ndarray] | None = None,
    ofnet: str = "ofnet",
) -> tuple[EchoKDMPipeline, AdaptInfo]:
    """Fine-tune F2I on frame pairs of one loop; the given pipeline is left unchanged.

    Args:
        pipeline: the KDM pipeline (its F2I is copied, then tuned).
        frames: (T, H, W) loop in [0, 1] on the source grid.
        sector: (H, W) bool sector mask (the working grid is fitted around it, as for the prediction).
        exclude: loop frames to leave out (see :func:`excluded_frames`).
        seconds: budget: steps by :data:`STEPS_PER_SECOND`, and a wall-clock cap.
        steps: the step count itself (overrides the rate; ``seconds`` still caps).
        seed: seeds pair draws, crops, K2F flows and diffusion noise.
        labels: frame -> (H, W) CAMUS labels of the loop's labelled frames: F2I learns on K2F flows of the pairs'
            keypoints; with fewer than two usable labelled frames, on flows of OF-net tuned to the loop.
        ofnet: OF-net weights (shipped name or ``.safetensors`` path), for that fallback.

    Returns:
        (a pipeline sharing K2F and the flow autoencoder with ``pipeline``, with the tuned F2I; what was done).

    Raises:
        InputError: a bad budget, or fewer than two loop frames left after the exclusion.
    """
    total = plan_steps(seconds, steps)
    t0 = time.perf_counter()
    excluded = sorted({int(e) for e in exclude if 0 <= e < len(frames)})
    used = [t for t in range(len(frames)) if t not in set(excluded)]
    device = pipeline.f2i_unet.device
    fit = SectorFit.from_mask(sector, pipeline.sample_size)
    kps = _working_keypoints(labels or {}, used, fit)
    by_k2f = len(kps) >= 2
    pairs = loop_pairs(sorted(kps) if by_k2f else used)
    if total and not len(pairs):
        raise InputError(f"adaptation needs two frames of the loop outside the left-out frames {excluded}")
    loop = fit.to_work(torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[:, None]).clamp(0, 1)
    loop = loop.to(device)
    g = torch.Generator().manual_seed(seed)  # pair draws and crops
    noise = torch.Generator(device).manual_seed(seed)  # diffusion timesteps and noise
    n_flow = min(MAX_FLOW_BATCHES, max(1, total // 4)) if by_k2f and total else 0
    n_of = 0 if by_k2f else int(round(total * OFNET_SHARE))
    # K2F's flows: a fixed draw of pairs, their flows generated batch by batch in the first steps
    flow_pairs = pairs[torch.randperm(len(pairs), generator=g)[: n_flow * FLOW_BATCH].numpy()]
    flows: list[torch.Tensor] = []
    unet = copy.deepcopy(pipeline.f2i_unet)
    done = {"flow": 0, "ofnet": 0, "f2i": 0}
    capped = False
    deadline = None if seconds is None else t0 + seconds
    if total:
        opt = torch.optim.Adam(unet.requires_grad_(True).train().parameters(), lr=LR_F2I)
        net = None if by_k2f else load_ofnet(ofnet).to(device).requires_grad_(True).train()
        opt_of = None if net is None else torch.optim.Adam(net.parameters(), lr=LR_OFNET)
        of_loss, scheduler = OFNetLoss(), training_scheduler(clip_sample=True)
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Using a non-tuple sequence", UserWarning)  # MONAI DiffusionLoss
            for step in progress(range(total), "adapt: F2I on the loop"):
                if deadline is not None and time.perf_counter() > deadline:
                    capped = True
                    break
                if step < n_flow:
                    idx = flow_pairs[step * FLOW_BATCH : (step + 1) * FLOW_BATCH]
                    ks, kt = (torch.from_numpy(np.stack([kps[int(t)] for t in idx[:, j]])).to(device) for j in (0, 1))
                    with torch.no_grad():
                        flows.append(pipeline.generate_flow(loop[idx[:, 0]], ks, kt, DEFAULT_STEPS,
                                                            torch.Generator().manual_seed(seed + step))[0])
                    done["flow"] += 1
                    continue
                if n_flow:
                    j = torch.randint(len(flows) * FLOW_BATCH, (BATCH,), generator=g)
                    idx, flow = flow_pairs[j.numpy()], torch.cat(flows)[j.to(device)]
                    src, tgt = loop[idx[:, 0]], loop[idx[:, 1]]
                else:
                    idx = pairs[torch.randint(len(pairs), (BATCH,), generator=g).numpy()]
                    src, tgt = loop[idx[:, 0]], loop[idx[:, 1]]
                    if step < n_of:
                        _step(opt_of, of_loss(src, tgt, net(src, tgt)))
                        done["ofnet"] += 1
                        continue
                    with torch.no_grad():
                        flow = net.eval()(src, tgt)
                cond, warped = f2i_condition(src, flow)
                x0, cond = _crop(CROP, g, residual_target(tgt, warped), cond)
                _step(opt, diffusion_loss(unet, scheduler, x0, cond, generator=noise))
                done["f2i"] += 1
    unet.requires_grad_(False).eval()
    adapted = EchoKDMPipeline(
        pipeline.flow_vae, pipeline.k2f_unet, unet, pipeline.k2f_scheduler, pipeline.f2i_scheduler
    )
    adapted.heart_reach = pipeline.heart_reach
    adapted.correction_fade = pipeline.correction_fade
    info = AdaptInfo(
        seconds=seconds, steps=total, steps_done=sum(done.values()), flows="k2f" if by_k2f else "ofnet",
        flow_steps=done["flow"], ofnet_steps=done["ofnet"], f2i_steps=done["f2i"], pairs=len(pairs),
        frames_used=sorted(kps) if by_k2f else used, excluded_frames=excluded, capped=capped,
        wall_s=round(time.perf_counter() - t0, 3), seed=seed,
    )
    return adapted, info


__all__ = ["AdaptInfo", "adapt_pipeline", "excluded_frames", "loop_pairs", "plan_steps"]
