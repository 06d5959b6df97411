"""Frame pairs for training and scoring the KDM models, cut from phantom loops at the working size.

Each pair is a source frame (the loop's ED or ES) and a target frame of the same loop, with their
keypoints, the exact pull flow source → target (phantom truth), and the thin-plate-spline flow the
keypoints alone imply. A :class:`PairSet` is built once per split and cached as safetensors, so every
model's training reads the same data.

A user's own cines (``data.sources``: :func:`echokdm.train.sources.source_loops`) have no labels and no exact
flow: :func:`cine_pairs` cuts self-supervised pairs from them (a :class:`CinePairSet`), for OF-net's photometric
loss and F2I's (source, OF-net flow, target) triplets, as the KDM paper trains on real loops. :class:`MixedPairs`
serves them together with phantom pairs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch.utils.data import ConcatDataset, Dataset, Subset

from echokdm.errors import EchoKDMError, InputError
from echokdm.flow import keypoint_flow, warp
from echokdm.grid import SectorFit
from echokdm.keypoints import extract_keypoints
from echokdm.labels import camus_labels
from echokdm.outputs import atomic_write
from echokdm.phantom import sample_params, simulate, split_seeds
from echokdm.progress import progress
from echokdm.train.cache import cache_key


@dataclass
class PairSet:
    """Frames, keypoints and flows of many loops, and the (source, target) frame pairs between them.

    Attributes:
        frames: (F, H, W) uint8 frames of all loops.
        labels: (F, H, W) uint8 CAMUS labels (0–3).
        keypoints: (F, K, 2) float32 keypoints (x, y).
        loop: (F,) int32 loop index of each frame.
        sector: (L, H, W) uint8 sector mask of each loop.
        ed, es: (L,) int32 frame indices of each loop's first ED and ES.
        pairs: (P, 2) int32 frame indices (source, target).
        flow: (P, 2, H, W) float16 exact pull flow source → target.
        kp_flow: (P, 2, H, W) float16 keypoint (TPS) flow source → target.
    """

    frames: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray
    loop: np.ndarray
    sector: np.ndarray
    ed: np.ndarray
    es: np.ndarray
    pairs: np.ndarray
    flow: np.ndarray
    kp_flow: np.ndarray

    def systoles(self) -> list[np.ndarray]:
        """Keypoint trajectory ED → ES of each loop: (T_i, K, 2) arrays (the motion prior's training data)."""
        return [self.keypoints[a : b + 1] for a, b in zip(self.ed, self.es)]

    def save(self, path: str | os.PathLike) -> None:
        save_file({f.name: np.ascontiguousarray(getattr(self, f.name)) for f in fields(self)}, str(path))

    @classmethod
    def load(cls, path: str | os.PathLike) -> PairSet:
        return cls(**load_file(str(path)))


def compose_pull(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pull flow a → c from pull flows a → b (``first``) and b → c (``second``), each (2, H, W)."""
    return second + warp(first, second).numpy()


def _loop_pairs(ed: int, es: int, n_frames: int, every: int) -> list[tuple[int, int]]:
    """(source, target) pairs: ED → every frame of its beat, ES → every later frame (stride ``every``)."""
    pairs = [(ed, t) for t in range(ed, n_frames, every) if t != ed]
    pairs += [(es, t) for t in range(es + 1, n_frames, every)]
    return pairs + [(ed, es)] if (ed, es) not in pairs else pairs


def build_pairs(split: str, n_loops: int, size: int, n_keypoints: int = 40, every: int = 2, start: int = 0) -> PairSet:
    """Simulate ``n_loops`` phantom loops of ``split`` at ``size``×``size`` and cut their pairs.

    Args:
        split: ``train``, ``val`` or ``test`` (disjoint seeds).
        n_loops: loops to simulate.
        size: working resolution in pixels.
        n_keypoints: 20 or 40.
        every: stride over target frames.
        start: first seed offset inside the split.
    """
    frames, labels, kps, loop_of, sectors, eds, ess, pairs, flows, kp_flows = [], [], [], [], [], [], [], [], [], []
    offset = 0
    for i, seed in enumerate(progress(split_seeds(split, n_loops, start), f"phantom {split} pairs")):
        lp = simulate(sample_params(seed, size=size))
        lab = camus_labels(lp.labels)
        k = np.stack([extract_keypoints(m, n_keypoints) for m in lab]).astype(np.float32)
        ed, es = lp.ed[0], lp.es[0]
        forward = {ed: np.zeros((2, size, size), np.float32)}
        for t in range(ed + 1, len(lp.frames)):  # chain ED -> t from the exact frame-to-frame flows
            forward[t] = lp.ddf_from_ed[t]
        from_es = {es: np.zeros((2, size, size), np.float32)}
        for t in range(es + 1, len(lp.frames)):
            from_es[t] = compose_pull(from_es[t - 1], lp.ddf_to_next[t - 1])
        for s, t in _loop_pairs(ed, es, len(lp.frames), every):
            flow = forward[t] if s == ed else from_es[t]
            pairs.append((offset + s, offset + t))
            flows.append(flow.astype(np.float16))
            kp_flows.append(keypoint_flow(k[s], k[t], (size, size)).astype(np.float16))
        # as echokdm.io.load_cine does for real loops: nothing outside the sector (burned-in UI) is kept
        frames.append((lp.frames * lp.sector_mask * 255).round().astype(np.uint8))
        labels.append(lab)
        kps.append(k)
        loop_of.append(np.full(len(lp.frames), i, np.int32))
        sectors.append(lp.sector_mask.astype(np.uint8))
        eds.append(offset + ed)
        ess.append(offset + es)
        offset += len(lp.frames)
    return PairSet(
        np.concatenate(frames), np.concatenate(labels), np.concatenate(kps), np.concatenate(loop_of),
        np.stack(sectors), np.asarray(eds, np.int32), np.asarray(ess, np.int32), np.asarray(pairs, np.int32),
        np.stack(flows), np.stack(kp_flows),
    )


def keypoint_counts(n_keypoints: int | list[int]) -> tuple[int, ...]:
    """The keypoint counts of a ``data.n_keypoints`` setting (one count or a list), ascending and distinct.

    Raises:
        InputError: empty, or a count other than 20 and 40.
    """
    counts = tuple(sorted({n_keypoints} if isinstance(n_keypoints, int) else set(n_keypoints)))
    if not counts or any(n not in (20, 40) for n in counts):
        raise InputError(f"data.n_keypoints must be 20, 40 or a list of them, got {n_keypoints}")
    return counts


def cached_pairs(
    cache_dir: str | os.PathLike, split: str, n_loops: int, size: int, n_keypoints: int = 40, every: int = 2
) -> PairSet:
    """:func:`build_pairs`, read from / written to ``cache_dir`` (one file per distinct request)."""
    path = Path(cache_dir) / f"pairs_{split}_{cache_key(split, n_loops, size, n_keypoints, every)}.safetensors"
    if path.exists():
        return PairSet.load(path)
    ps = build_pairs(split, n_loops, size, n_keypoints, every)
    with atomic_write(path) as tmp:
        ps.save(tmp)
    return ps


class PairDataset(Dataset):
    """Torch view of a :class:`PairSet`: one dict of float32 tensors per pair.

    Keys: ``source``, ``target`` (1, H, W) in [0, 1]; ``src_kps``, ``tgt_kps`` (K, 2); ``flow`` and
    ``kp_flow`` (2, H, W); ``target_label`` (H, W) int64; ``sector`` (H, W); and ``model_flow`` when
    ``model_flows`` (P, 2, H, W) are given (e.g. OF-net estimates used as K2F targets).
    """

    def __init__(self, pairs: PairSet | CinePairSet, model_flows: np.ndarray | None = None) -> None:
        self.p = pairs
        self.model_flows = model_flows

    def __len__(self) -> int:
        return len(self.p.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, t = (int(v) for v in self.p.pairs[i])
        item = self._pair_item(i, s, t)
        item["source"] = torch.from_numpy(self.p.frames[s][None].astype(np.float32) / 255)
        item["target"] = torch.from_numpy(self.p.frames[t][None].astype(np.float32) / 255)
        item["sector"] = torch.from_numpy(self.p.sector[self.p.loop[s]].astype(np.float32))
        if self.model_flows is not None:
            item["model_flow"] = torch.from_numpy(self.model_flows[i].astype(np.float32))
        return item

    def _pair_item(self, i: int, s: int, t: int) -> dict[str, torch.Tensor]:
        """What the set holds beyond frames and sector for pair ``i`` (source frame ``s``, target ``t``)."""
        return {
            "src_kps": torch.from_numpy(self.p.keypoints[s].astype(np.float32)),
            "tgt_kps": torch.from_numpy(self.p.keypoints[t].astype(np.float32)),
            "flow": torch.from_numpy(self.p.flow[i].astype(np.float32)),
            "kp_flow": torch.from_numpy(self.p.kp_flow[i].astype(np.float32)),
            "target_label": torch.from_numpy(self.p.labels[t].astype(np.int64)),
        }


@dataclass
class CinePairSet:
    """Frames of unlabelled loops on the working grid and (source, target) pairs between frames of one loop.

    Attributes:
        frames: (F, S, S) uint8 frames of all loops (working grid, fitted around each loop's sector).
        loop: (F,) int32 loop index of each frame.
        sector: (L, S, S) uint8 sector mask of each loop on the working grid.
        pairs: (P, 2) int32 frame indices (source, target).
        keypoints: (F, K, 2) float32 working-grid keypoints of each frame's labels (NaN where the labels give
            none; such frames make no pair), or None without labels.
        kp_flow: (P, 2, S, S) float16 keypoint (TPS) flow of each pair, or None without labels.
    """

    frames: np.ndarray
    loop: np.ndarray
    sector: np.ndarray
    pairs: np.ndarray
    keypoints: np.ndarray | None = None
    kp_flow: np.ndarray | None = None


def working_keypoints(labels: np.ndarray, fit: SectorFit, n_keypoints: int) -> np.ndarray:
    """(T, K, 2) working-grid keypoints of (T, H, W) CAMUS label maps; NaN for a frame without a usable LV."""
    out = np.full((len(labels), n_keypoints, 2), np.nan, np.float32)
    for t, lab in enumerate(labels):
        try:
            out[t] = fit.points_to_work(extract_keypoints(lab, n_keypoints))
        except EchoKDMError:  # no usable LV in this frame
            continue
    return out


def cine_pairs(
    loops: list[dict],
    size: int,
    every: int = 2,
    max_gap: int = 12,
    labels: list[np.ndarray] | None = None,
    n_keypoints: int = 40,
) -> CinePairSet:
    """Self-supervised pairs of real loops: every ``every``-th frame is a source, every other frame at most
    ``max_gap`` frames away (before or after) a target.

    Args:
        loops: :func:`echokdm.train.sources.source_loops` entries (``frames`` (T, H, W) in [0, 1], ``mask``).
        size: working resolution; each loop is mapped onto it by :class:`~echokdm.grid.SectorFit`, as
            ``echokdm predict`` maps its input.
        every: stride over source frames.
        max_gap: largest frame distance of a pair.
        labels: (T, H, W) CAMUS label maps of each loop (e.g. the segmenter's): adds the keypoints of every frame
            (``n_keypoints``) and the keypoint flow of every pair, as ``echokdm predict`` takes keypoints from
            its labels; frames without usable LV make no pair.
        n_keypoints: 20 or 40.
    """
    frames, loop_of, sectors, pairs, kps = [], [], [], [], []
    offset = 0
    for i, lp in enumerate(loops):
        fit = SectorFit.from_mask(lp["mask"], size)
        x = torch.from_numpy(np.ascontiguousarray(lp["frames"], dtype=np.float32))[:, None]
        frames.append((fit.to_work(x)[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
        sectors.append(fit.to_work(torch.from_numpy(lp["mask"])[None, None], "nearest")[0, 0].numpy().astype(np.uint8))
        n = len(lp["frames"])
        ok = np.ones(n, bool)
        if labels is not None:
            kps.append(working_keypoints(labels[i], fit, n_keypoints))
            ok = ~np.isnan(kps[-1]).any((1, 2))
        loop_of.append(np.full(n, i, np.int32))
        pairs += [(offset + s, offset + t) for s in range(0, n, every)
                  for t in range(max(0, s - max_gap), min(n, s + max_gap + 1)) if t != s and ok[s] and ok[t]]
        offset += n
    ps = CinePairSet(np.concatenate(frames), np.concatenate(loop_of), np.stack(sectors),
                     np.asarray(pairs, np.int32).reshape(-1, 2))
    if labels is not None:
        ps.keypoints = np.concatenate(kps)
        ps.kp_flow = np.stack([keypoint_flow(ps.keypoints[s], ps.keypoints[t], (size, size)).astype(np.float16)
                               for s, t in ps.pairs]) if len(ps.pairs) else np.zeros((0, 2, size, size), np.float16)
    return ps


class CinePairDataset(PairDataset):
    """Torch view of a :class:`CinePairSet`: ``source``, ``target`` (1, S, S) in [0, 1], ``sector`` (S, S);
    ``src_kps``, ``tgt_kps`` (K, 2) and ``kp_flow`` (2, S, S) when the set has keypoints; ``model_flow``
    (2, S, S) when ``model_flows`` (P, 2, S, S) are given (OF-net's estimates: F2I's flows, K2F's targets)."""

    def _pair_item(self, i: int, s: int, t: int) -> dict[str, torch.Tensor]:
        if self.p.keypoints is None:
            return {}
        return {
            "src_kps": torch.from_numpy(self.p.keypoints[s]),
            "tgt_kps": torch.from_numpy(self.p.keypoints[t]),
            "kp_flow": torch.from_numpy(self.p.kp_flow[i].astype(np.float32)),
        }


def weighted(dataset: Dataset, weight: float, seed: int) -> Subset:
    """``round(len(dataset) * weight)`` samples of ``dataset`` per epoch (repeated above 1, a fixed random subset
    below 1), in a seeded order (the trainer's sampler shuffles them)."""
    n = max(1, round(len(dataset) * weight))
    order = np.random.default_rng(seed).permutation(len(dataset))
    return Subset(dataset, np.resize(order, n).tolist())


class MixedPairs(ConcatDataset):
    """Pairs of several sources (phantom and real) one after the other, each sample holding only the keys every
    source has (a real pair has no exact flow, keypoints or labels), so they batch together."""

    def __init__(self, datasets: list[Dataset]) -> None:
        super().__init__(datasets)
        firsts = [set(ds[0]) for ds in datasets]
        self.keys = sorted(set.intersection(*firsts))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(i)
        return {k: item[k] for k in self.keys}
