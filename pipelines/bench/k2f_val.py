#!/usr/bin/env python3
"""K2F flow error against exact flows: phantom validation pairs, and real-texture pairs of a held-out real loop.

    python pipelines/bench/k2f_val.py --k2f kdm_k2f --k2f runs/k2f_rtex_sonosite/best.safetensors \
        [--texture runs/rtex/acuson] [--config pipelines/configs/k2f.yaml] [--pairs 200]

Each K2F (shipped name or file, with the shipped flow autoencoder) is validated as ``echokdm train k2f`` validates
(:meth:`echokdm.train.kdm.K2FTask.validation_step`: end-point error of the sampled flow inside the LV at
``data.val_steps`` steps, seed 0) on the config's phantom validation pairs and, with ``--texture DIR``, on ``--pairs``
real-texture pairs (:func:`echokdm.train.texture.texture_pairs`) of the cine in DIR made from the phantom
*validation* pairs: exact flows on the real loop's frames. Score a loop only with K2Fs that never saw it. Printed:
mean EPE and, against the first K2F, the paired difference with its bootstrap 95% CI (pairs resampled).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def epe(task, model, ds, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair ``epe_lv`` of ``model`` on ``ds`` (the task's validation step), and of the thin-plate-spline flow."""
    from torch.utils.data import DataLoader

    with torch.no_grad():
        out = [task.validation_step(model, b, torch.device("cpu")) for b in DataLoader(ds, batch_size=batch)]
    return tuple(torch.cat([o[k] for o in out]).numpy() for k in ("epe_lv", "epe_lv_tps"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k2f", action="append", required=True, help="K2F weights (shipped name or file; repeatable)")
    ap.add_argument("--config", type=Path, default=Path("pipelines/configs/k2f.yaml"))
    ap.add_argument("--cache", default="data/cache/kdm", help="cache of the phantom pairs")
    ap.add_argument("--texture", type=Path, default=None, help="folder of a real cine: also its real-texture pairs")
    ap.add_argument("--pairs", type=int, default=200, help="real-texture pairs")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)

    import yaml
    from diffusers import UNet2DModel

    from echokdm.config import load_config
    from echokdm.evaluate.stats import paired_difference
    from echokdm.models.loading import load_diffusers_model
    from echokdm.segmenter import BuiltinSegmenter
    from echokdm.train.kdm import K2FTask
    from echokdm.train.pairs import PairDataset, cached_pairs
    from echokdm.train.sources import SourceConfig, source_loops
    from echokdm.train.texture import real_frames, texture_pairs

    cfg = yaml.safe_load(a.config.read_text())
    cfg["data"].update(cache_dir=a.cache, flow_vae_weights="kdm_flow_vae")
    task = K2FTask(load_config(cfg, K2FTask.config_class))
    d = task.cfg.data
    val = cached_pairs(d.cache_dir, "val", d.val_loops, d.size, d.n_keypoints, d.every)
    sets = {f"phantom val ({len(val.pairs)} pairs)": PairDataset(val)}
    if a.texture is not None:
        loops = source_loops(SourceConfig("cine-folder", str(a.texture), "all"))
        seg = BuiltinSegmenter()
        labels = [seg(lp["frames"], sector_mask=lp["mask"], frame_time_ms=lp["frame_time_ms"]) for lp in loops]
        tp = texture_pairs(val, real_frames(loops, labels, d.size, d.n_keypoints), a.pairs, a.seed)
        sets[f"real-texture {a.texture.name} ({a.pairs} pairs)"] = PairDataset(tp)
    models = {name: load_diffusers_model(UNet2DModel, name).eval() for name in a.k2f}
    for label, ds in sets.items():
        both = {name: epe(task, m, ds) for name, m in models.items()}
        scores, tps = {name: e for name, (e, _) in both.items()}, both[a.k2f[0]][1]
        print(f"\n{label}: K2F flow EPE in the LV at {d.val_steps} steps (thin-plate spline {tps.mean():.3f} px)")
        ref = a.k2f[0]
        for name, s in scores.items():
            diff = "" if name == ref else f"  vs first: {paired_difference(s, scores[ref]).format(3)}"
            print(f"  {s.mean():.3f} px{diff}  {name}")


if __name__ == "__main__":
    main()
