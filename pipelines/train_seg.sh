#!/usr/bin/env bash
# The exact commands that produced echokdm/weights/seg_a4c.safetensors (CPU, 1 thread per process, no GPU).
# Run from the repository root with the venv active. Multi-GPU / multi-process: prefix the train
# command with `torchrun --nproc_per_node N -m` instead of `echokdm` (DDP; gloo on CPU, NCCL on GPU).
set -euo pipefail

# 1. train in four stages (phantom loops are simulated once into data/cache/seg, two processes in parallel):
#    heavy per-structure echogenicity randomisation (robust on the real loop), then ever milder fine-tunes
#    that remove most of the first stage's EF bias on the phantom. ~7 + ~2.5 + ~2 + ~2 min wall.
echokdm train seg --config pipelines/configs/seg.yaml --out runs/seg_a4c
echokdm train seg --config pipelines/configs/seg_finetune.yaml --out runs/seg_a4c_ft
echokdm train seg --config pipelines/configs/seg_finetune2.yaml --out runs/seg_a4c_ft2
echokdm train seg --config pipelines/configs/seg_finetune3.yaml --out runs/seg_a4c_ft3

# 2. ship: fp16 copy + manifest sha256 + model-card file table
python -c "from echokdm import weights; print(weights.export('runs/seg_a4c_ft3/best.safetensors', 'seg_a4c', \
  'LV cavity / LV myocardium / LA segmenter for apical 4-chamber cines (MONAI UNet, 128x128 working grid)'))"

# 3. check: held-out phantom test split, speed, the real SonoSite loop
python pipelines/bench/seg_eval.py --n 20 --threads 1
python pipelines/bench/seg_speed.py
echokdm segment --dicom "$(python -c 'from pydicom.data import get_testdata_file as f; print(f("examples_ybr_color.dcm"))')" \
  --out runs/seg_sonosite --overwrite
cp runs/seg_sonosite/overlay.gif docs/seg_sonosite_overlay.gif
cp runs/seg_sonosite/area_curve.png docs/seg_sonosite_area.png
cp runs/seg_sonosite/overlay_ed_es.png docs/seg_sonosite_ed_es.png
