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
# 1b. stage 5 (issue #19, real scanners): both phantom renderers, other fields of view, lossy video coding.
#    ~15 min wall on 2 cores (126 loops simulated first, ~10 min when the cache is cold).
echokdm train seg --config pipelines/configs/seg_real.yaml --out runs/seg_a4c_real
# 1c. stage 6: stage 5's best epoch with stage 4's milder intensity augmentation (3 epochs, ~5 min wall).
echokdm train seg --config pipelines/configs/seg_real2.yaml --out runs/seg_a4c_real2
# 1d. stage 7: stage 6 with the open mitral valve of diastole drawn into its phantom frames (3 epochs, ~2 min wall;
#     the shipped file started from the shipped stage-6 fp16 file, sha256 ee1f3da6..., through --init).
echokdm train seg --config pipelines/configs/seg_real9.yaml --out runs/seg_a4c_real9
# 1e. stage 8: stage 7 with the LV-cavity area term on systolic frames (3 epochs, ~2 min wall; the shipped file
#     started from the shipped stage-7 fp16 file, sha256 c9baa1fe..., through --init).
echokdm train seg --config pipelines/configs/seg_real11.yaml --out runs/seg_a4c_real11

# 2. ship: fp16 copy + manifest sha256 + model-card file table
python -c "from echokdm import weights; print(weights.export('runs/seg_a4c_real11/best.safetensors', 'seg_a4c', \
  'LV cavity / LV myocardium / LA segmenter for apical 4-chamber cines (MONAI UNet, 128x128 working grid)'))"

# 3. check: held-out phantom test split, speed, the proxies of the real acceptance sets (EchoNet-like 112-px
#    loops and 8-frames/s clips of both renderers, agreement on the two real loops), the real loops
python pipelines/bench/seg_eval.py --n 20 --threads 1
python pipelines/bench/seg_speed.py
python pipelines/bench/seg_proxies.py make --out runs/proxies --n 20
python pipelines/bench/seg_proxies.py make --out runs/proxies_cole --n 20 --renderer cole
python pipelines/bench/seg_proxies.py score --data runs/proxies --weights seg_a4c --report runs/proxies_eval
python pipelines/bench/seg_proxies.py score --data runs/proxies_cole --weights seg_a4c
python pipelines/bench/seg_real_figure.py --out docs/seg_real --shown sonosite:22,3 --shown acuson:10,32 \
  "stage 7=runs/seg_a4c_real9/best.safetensors" "stage 8=seg_a4c"
echokdm segment --dicom "$(python -c 'from pydicom.data import get_testdata_file as f; print(f("examples_ybr_color.dcm"))')" \
  --out runs/seg_sonosite --overwrite
cp runs/seg_sonosite/overlay.gif docs/seg_sonosite_overlay.gif
cp runs/seg_sonosite/area_curve.png docs/seg_sonosite_area.png
cp runs/seg_sonosite/overlay_ed_es.png docs/seg_sonosite_ed_es.png
