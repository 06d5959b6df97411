#!/usr/bin/env bash
# Progressive distillation of the shipped F2I (issue 22, default steps): a 5-step student of the 10-step teacher,
# then the step table that decides whether it ships (K2F at 10 steps; teacher at 10 and 5, student at 5; phantom
# validation loops and the two real loops, tests ci and paired against the teacher at 10). On the shared 2-core CPU,
# under `nice`. Run from the repository root with the venv active.
set -euo pipefail
echokdm train f2i-distil --config pipelines/configs/f2i_distil.yaml --out runs/f2i_distil --overwrite
python pipelines/bench/kdm_steps.py --student runs/f2i_distil/best.safetensors --student-steps 5 --f2i-only \
    --steps 5,10 --cases 24 --seeds 6 --threads 1 --work runs/f2i_distil/steps
# Not shipped: the student fails the paired test (phantom Dice -0.001 [-0.001, -0.000]; echokdm/weights/MODEL_CARD.md).
