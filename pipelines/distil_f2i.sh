#!/usr/bin/env bash
# Progressive distillation of the shipped F2I (issue 22, default steps): a 5-step student of the 10-step teacher,
# then the step table that decides whether it ships (K2F at 10 steps; teacher at 10 and 5, student at 5; phantom
# validation loops and the two real loops, tests ci and paired against the teacher at 10). On the shared 2-core CPU,
# under `nice`. Run from the repository root with the venv active.
set -euo pipefail
echokdm train f2i-distil --config pipelines/configs/f2i_distil.yaml --out runs/f2i_distil --overwrite
python pipelines/bench/kdm_steps.py --student runs/f2i_distil/best.safetensors --student-steps 5 --f2i-only \
    --steps 5,10 --cases 12 --seeds 4 --threads 1 --work runs/f2i_distil/steps
# shipped only if the student passes both tests everywhere (it did not: echokdm/weights/MODEL_CARD.md):
# python -c "from echokdm import weights; print(weights.export('runs/f2i_distil/best.safetensors', 'kdm_f2i_s5', \
#     'KDM F2I distilled to 5 DDIM steps'))"
