#!/usr/bin/env bash
# GPU check of echokdm, unchanged on any CUDA machine (run from the repository root with the venv active):
#   pipelines/bench/gpu_check.sh [OUT]
# Prints: predict throughput (studies/s, one study and 8 in a row), train samples/s for seg and F2I, bf16
# autocast against fp32, peak GPU memory; then checks that --device cuda works on every command and that
# two-process DDP (NCCL) runs when there are two GPUs. Writes only under OUT (default /tmp/gpu_check).
# No GPU was available when this was written: no number has been measured with it yet.
set -euo pipefail
OUT=${1:-/tmp/gpu_check}
mkdir -p "$OUT"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: nothing to check')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python pipelines/bench/gpu_check.py --device cuda --out "$OUT" | tee "$OUT/gpu_check.md"
echokdm predict --sample --device cuda --out "$OUT/predict" --overwrite
echokdm evaluate --data phantom-test:4 --predictors copy,kdm --device cuda --report "$OUT/evaluate" --overwrite
if [[ $(python -c "import torch; print(torch.cuda.device_count())") -ge 2 ]]; then
  python - "$OUT" <<'PY'
import sys, yaml
yaml.safe_dump({"train": {"epochs": 1, "batch_size": 8}, "data": {"train_loops": 4, "val_loops": 1,
                "cache_dir": f"{sys.argv[1]}/cache_seg"}}, open(f"{sys.argv[1]}/ddp.yaml", "w"))
PY
  torchrun --standalone --nproc_per_node 2 -m echokdm train seg --config "$OUT/ddp.yaml" --device cuda \
    --out "$OUT/ddp" --overwrite
fi
echo "table: $OUT/gpu_check.md"
