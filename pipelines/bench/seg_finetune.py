"""LV-cavity Dice of segmenter weights on the labelled ED/ES frames of an EchoNet-Dynamic or CAMUS folder.

    python pipelines/bench/seg_finetune.py --data echonet:DIR [--split test] [--weights seg_a4c] [--base W]

Each loop is segmented whole on its own grid (as ``echokdm segment`` does) and the LV cavity (label 1) of its
ED and ES frames is compared with the tracings (EchoNet) or the ground truth (CAMUS, both views). Prints the
mean Dice over all labelled frames, its spread, and the seconds taken; with ``--base`` the paired lift over those
weights with a bootstrap 95% CI. Used before/after fine-tuning with
``echokdm train seg --data ... --init seg_a4c`` (docs/training.md, "Bring your own data").
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle threads sleep (shared CPUs)
import time

import numpy as np
import torch

from echokdm.defaults import SEG_WEIGHTS
from echokdm.models.seg import LVSegmenter


def labelled_loops(kind: str, root: str, split: str):
    """(name, frames (T, H, W), sector mask, {frame: LV mask}) of every loop of the folder's ``split``."""
    if kind == "echonet":
        from echokdm.data.echonet import echonet_datalist, load_echonet_item

        for item in echonet_datalist(root, split):
            d = load_echonet_item(item)
            labels = {int(item["ed"]): d["label_ed"], int(item["es"]): d["label_es"]}
            yield item["filename"], d["image"][0].numpy(), d["image"].meta["sector_mask"], labels
    else:
        from echokdm.data.camus import VIEWS, camus_datalist, load_camus_item

        for view in VIEWS:
            for item in camus_datalist(root, view, split):
                d = load_camus_item(item)
                labels = {item["ed"]: d["label_ed"], item["es"]: d["label_es"]}
                yield f"{item['patient']}_{view}", d["image"][0].numpy(), d["image"].meta["sector_mask"], labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="echonet:DIR or camus:DIR")
    ap.add_argument("--split", default="test", help="train, val, test or all")
    ap.add_argument("--weights", default=SEG_WEIGHTS, help="shipped name, model.safetensors or a train --out folder")
    ap.add_argument("--base", default=None,
                    help="also score these weights (e.g. seg_a4c) and print the paired lift with a bootstrap 95%% CI")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kind, _, root = args.data.partition(":")
    t0 = time.perf_counter()
    d = lv_dice(kind, root, args.split, args.weights)
    print(
        f"{args.data} split={args.split} weights={args.weights}: LV Dice {d.mean():.3f} "
        f"(sd {d.std():.3f}, min {d.min():.3f}, {len(d)} frames) in {time.perf_counter() - t0:.1f} s"
    )
    if args.base is not None:
        lift = d - lv_dice(kind, root, args.split, args.base)
        boot = np.random.default_rng(0).choice(lift, (10000, len(lift))).mean(1)
        print(f"lift over {args.base}: {lift.mean():+.4f} [{np.percentile(boot, 2.5):+.4f}, "
              f"{np.percentile(boot, 97.5):+.4f}] (paired over frames, bootstrap 95% CI)")


def lv_dice(kind: str, root: str, split: str, weights: str) -> np.ndarray:
    """LV-cavity Dice of every labelled frame of the folder's ``split`` under ``weights``."""
    path = os.path.join(weights, "model.safetensors") if os.path.isdir(weights) else weights
    seg = LVSegmenter.from_pretrained(path)
    dice = []
    for _name, frames, mask, labels in labelled_loops(kind, root, split):
        pred = seg(frames.astype(np.float32), sector_mask=np.asarray(mask, bool)).labels
        for t, truth in labels.items():
            p, g = pred[t] == 1, np.asarray(truth) == 1
            dice.append(2 * (p & g).sum() / max(p.sum() + g.sum(), 1))
    return np.asarray(dice)


if __name__ == "__main__":
    main()
