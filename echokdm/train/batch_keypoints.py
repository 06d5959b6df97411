"""What a K2F training batch is conditioned on: the first ``n`` keypoints of each pair, and target walls moved with
the endocardium as ``echokdm predict`` and ``echokdm evaluate`` give them."""

from __future__ import annotations

import torch

from echokdm.errors import EchoKDMError
from echokdm.models.conditioning import batch_keypoint_flow


def with_keypoints(batch: dict, n: int) -> dict:
    """``batch`` conditioned on its first ``n`` keypoints (of 40, the first 20 are the endocardium): ``src_kps``
    and ``tgt_kps`` cut to ``n`` and ``kp_flow`` the thin-plate-spline flow of those (the rest as it is)."""
    if batch["src_kps"].shape[1] == n:
        return batch
    if batch["src_kps"].shape[1] < n:
        raise EchoKDMError(f"a batch with {batch['src_kps'].shape[1]} keypoints has no first {n}")
    src, tgt = batch["src_kps"][:, :n], batch["tgt_kps"][:, :n]
    kp_flow = batch_keypoint_flow(src, tgt, tuple(batch["kp_flow"].shape[-2:])).to(batch["kp_flow"])
    return {**batch, "src_kps": src, "tgt_kps": tgt, "kp_flow": kp_flow}


def with_moved_walls(batch: dict, moved: torch.Tensor) -> dict:
    """``batch`` (40 keypoints) with the target epicardium of the pairs where ``moved`` (B,) is True moved from
    the source's with the endocardium at constant area (:func:`echokdm.keypoints.move_epicardium`) and their
    keypoint flow redone; the flows to learn are unchanged."""
    from echokdm.keypoints import move_epicardium

    if batch["tgt_kps"].shape[1] != 40 or not moved.any():
        return batch
    tgt, kp_flow = batch["tgt_kps"].clone(), batch["kp_flow"].clone()
    idx = moved.nonzero().flatten()
    for i in idx.tolist():
        walled = move_epicardium(batch["src_kps"][i].double().numpy(), batch["tgt_kps"][i, :20].double().numpy())
        tgt[i] = torch.from_numpy(walled).to(tgt)
    kp_flow[idx] = batch_keypoint_flow(batch["src_kps"][idx], tgt[idx], tuple(kp_flow.shape[-2:])).to(kp_flow)
    return {**batch, "tgt_kps": tgt, "kp_flow": kp_flow}
