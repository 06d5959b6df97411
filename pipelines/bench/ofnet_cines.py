"""OF-net weights on the self-supervised frame pairs of real cines (held out from their training):

    python pipelines/bench/ofnet_cines.py --data cine-folder:DIR --weights ofnet --weights runs/ofnet_ft [--every 3]

The pairs are those ``echokdm train ofnet --data`` cuts (:func:`echokdm.train.pairs.cine_pairs`, on the working
grid as ``echokdm predict`` maps a loop). Per weights: the LNCC of the source warped by OF-net's flow against the
target (-1 is a perfect match; the photometric part of OF-net's loss), the same for no motion, and PSNR inside the
sector of the warped source and of the source itself. No exact flow exists on real loops, so these are proxies.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle threads sleep (shared CPUs)

import numpy as np
import torch
from monai.losses import LocalNormalizedCrossCorrelationLoss

from echokdm.flow import warp
from echokdm.models.loading import load_ofnet
from echokdm.train.pairs import cine_pairs
from echokdm.train.sources import SourceConfig, parse_data_option, source_loops


def _psnr(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2 * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="KIND:PATH of the cines (cine-folder, echonet, camus)")
    ap.add_argument("--split", default="all")
    ap.add_argument("--weights", action="append", required=True, help="OF-net weights (repeatable)")
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    src = SourceConfig(**parse_data_option(args.data), split=args.split)
    ps = cine_pairs(source_loops(src), args.size, args.every)
    frames = torch.from_numpy(ps.frames.astype(np.float32) / 255)[:, None]
    s, t = (torch.from_numpy(ps.pairs[:, j].astype(np.int64)) for j in (0, 1))
    sector = torch.from_numpy(ps.sector[ps.loop[ps.pairs[:, 0]]].astype(np.float32))[:, None]
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=2, kernel_size=9, reduction="none")
    print(f"{len(ps.pairs)} pairs of {len(ps.sector)} loop(s) from {args.data}")
    print(f"{'no motion':>40}: LNCC {lncc(frames[s], frames[t]).mean():.4f}, "
          f"PSNR {_psnr(frames[s], frames[t], sector).mean():.2f} dB")
    for name in args.weights:
        net = load_ofnet(name).eval()
        warped = torch.cat([warp(frames[s[i : i + 32]], net(frames[s[i : i + 32]], frames[t[i : i + 32]]))
                            for i in range(0, len(s), 32)])
        print(f"{name:>40}: LNCC {lncc(warped, frames[t]).mean():.4f}, "
              f"PSNR {_psnr(warped, frames[t], sector).mean():.2f} dB")


if __name__ == "__main__":
    main()
