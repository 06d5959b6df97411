#!/usr/bin/env bash
# Progressive distillation of the shipped F2I (issue 22, default steps): students of 5 and of 2 DDIM steps of the
# 10-step teacher, then the step table that decides whether one ships (K2F at 10 steps; teacher at 10 and at the
# student's steps, student at its steps; 24 phantom validation loops and the two real loops at 6 seeds, tests ci and
# paired against the teacher at 10). On the shared 2-core CPU, under `nice`. Run from the repository root with the
# venv active.
set -euo pipefail
for s in 5 2; do
    config=pipelines/configs/f2i_distil.yaml
    [ "$s" = 2 ] && config=pipelines/configs/f2i_distil_s2.yaml
    echokdm train f2i-distil --config "$config" --out "runs/f2i_distil_s$s" --overwrite
    cp "runs/f2i_distil_s$s/best.safetensors" "runs/f2i_distil_s$s.safetensors"
    python pipelines/bench/kdm_steps.py --student "runs/f2i_distil_s$s.safetensors" --student-steps "$s" --f2i-only \
        --steps "$s,10" --cases 24 --seeds 6 --threads 1 --work runs/f2i_distil_steps
done
# Neither ships: both fail the paired test (phantom Dice -0.001; the 2-step student also Acuson's EF error, +2.84
# points), echokdm/weights/MODEL_CARD.md.
