#!/usr/bin/env bash
# The whole echokdm chain on one data set, sourced by pipelines/reproduce_echonet.sh and reproduce_camus.sh:
#   seg (fine-tuned from seg_a4c on the data set's labels) -> OF-net -> flow AE -> K2F -> F2I -> prior -> evaluate.
# Needs: KIND (echonet|camus), DATA (the data set's folder), OUT (runs folder), DRY (1 = tiny phantom run).
# OF-net, flow AE, K2F and F2I learn from the data set's own cines (self-supervised pairs) mixed with phantom
# pairs, on the flows of the OF-net trained here as in the paper, K2F on the keypoints of the segmenter fine-tuned
# here (docs/own_data.md); the prior learns from phantom trajectories and that segmenter's keypoint trajectories
# ED -> ES of the data set's training cines.
# Expected times on one GPU: none measured yet (no GPU was available; run pipelines/bench/gpu_check.sh).
# On 2 CPU cores: seg 5 epochs of EchoNet-Dynamic's 7465 train pairs ~ 25 min per epoch (measured 2.5
# samples/s per core); the KDM stages as pipelines/train_kdm.sh (hours on CPU).
set -euo pipefail
: "${KIND:?}" "${DATA:?}" "${OUT:?}" "${DRY:=0}"
DEVICE=${DEVICE:-auto}
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }
stage() { local t0=$SECONDS; log "$1: ${*:2}"; "${@:2}"; log "$1 done in $((SECONDS - t0)) s"; }
mkdir -p "$OUT"

if [[ $DRY == 1 ]]; then
  # tiny phantom-written layout named as the real release, tiny configs: the chain end to end in minutes
  stage data echokdm phantom --out "$OUT/data" --layout "$KIND" --n 4 --frames 16 --overwrite
  python - "$KIND" "$OUT/data" <<'PY'
import sys, pandas as pd
kind, root = sys.argv[1:]
if kind == "echonet":  # one video each for validation and test
    t = pd.read_csv(f"{root}/FileList.csv"); t.loc[2, "Split"] = "VAL"; t.loc[3, "Split"] = "TEST"
    t.to_csv(f"{root}/FileList.csv", index=False)
else:  # the 2023 release's split files: patient 3 validation, 4 test
    for name, ids in (("training", (1, 2)), ("validation", (3,)), ("testing", (4,))):
        open(f"{root}/database_split/subgroup_{name}.txt", "w").write("".join(f"patient{i:04d}\n" for i in ids))
PY
  DATA="$OUT/data"
  SEG=(--epochs 1)
  python - "$OUT" <<'PY'
import sys, yaml
out = sys.argv[1]
tiny = {"train": {"epochs": 1, "batch_size": 4, "threads": 1},
        "data": {"train_loops": 2, "val_loops": 1, "every": 6, "cache_dir": f"{out}/cache", "crop": 32}}
for name, extra in {"ofnet": {}, "flowae": {}, "k2f": {"data": {"flow_source": "truth"}},
                    "f2i": {"data": {"flow_source": "truth"}}}.items():
    cfg = {k: dict(v) for k, v in tiny.items()}
    for k, v in extra.items():
        cfg[k].update(v)
    if name == "k2f":
        cfg["data"].pop("crop")
    yaml.safe_dump(cfg, open(f"{out}/{name}.yaml", "w"))
yaml.safe_dump({"train": {"batch_size": 4, "threads": 1}, "data": {"frames_per_loop": 2}}, open(f"{out}/seg.yaml", "w"))
PY
  CFG="$OUT" SEGCFG=(--config "$OUT/seg.yaml") EVAL=(--predictors copy,tps,kdm --size 64) PHANTOM=2 F2I="$OUT/f2i.yaml"
else
  SEG=(--epochs 5) CFG=pipelines/configs SEGCFG=() EVAL=(--predictors copy,tps,kdm) PHANTOM=120
  F2I=pipelines/configs/f2i_ofnet.yaml
fi
# flow AE, K2F and F2I on the data set's cines (+ phantom pairs) with the flows of the OF-net trained here; K2F's
# keypoints on the data set's cines are the segmenter's fine-tuned here
python - "$CFG" "$F2I" "$OUT" <<'PY'
import sys, yaml
cfg_dir, f2i, out = sys.argv[1:]
for name, src in (("flowae", f"{cfg_dir}/flowae.yaml"), ("k2f", f"{cfg_dir}/k2f.yaml"), ("f2i", f2i)):
    cfg = yaml.safe_load(open(src))
    cfg["data"].update(flow_source="ofnet", ofnet_weights=f"{out}/ofnet/model.safetensors",
                       flow_vae_weights=f"{out}/flowae/model.safetensors", seg_weights=f"{out}/seg/model.safetensors")
    yaml.safe_dump(cfg, open(f"{out}/{name}_data.yaml", "w"))
PY
CINES=(--data "$KIND:$DATA" --data "phantom:$PHANTOM")

stage seg echokdm train seg "${SEGCFG[@]}" --data "$KIND:$DATA" --init seg_a4c "${SEG[@]}" --out "$OUT/seg" --overwrite
python pipelines/bench/seg_finetune.py --data "$KIND:$DATA" --split test --weights seg_a4c
python pipelines/bench/seg_finetune.py --data "$KIND:$DATA" --split test --weights "$OUT/seg"
stage ofnet echokdm train ofnet --config "$CFG/ofnet.yaml" "${CINES[@]}" --out "$OUT/ofnet" --overwrite
stage flowae echokdm train flowae --config "$OUT/flowae_data.yaml" "${CINES[@]}" --out "$OUT/flowae" --overwrite
stage k2f echokdm train k2f --config "$OUT/k2f_data.yaml" "${CINES[@]}" --out "$OUT/k2f" --overwrite
stage f2i echokdm train f2i --config "$OUT/f2i_data.yaml" "${CINES[@]}" --out "$OUT/f2i" --overwrite
stage prior python pipelines/fit_prior.py --config "$CFG/k2f.yaml" --data "$KIND:$DATA" \
  --seg-weights "$OUT/seg/model.safetensors" --out "$OUT/prior.safetensors"
# the models trained here, named as the shipped ones, for evaluate --weights (KDM) and --seg-weights
mkdir -p "$OUT/weights"
for pair in seg:seg_a4c flowae:kdm_flow_vae k2f:kdm_k2f f2i:kdm_f2i; do
  cp "$OUT/${pair%%:*}/model.safetensors" "$OUT/weights/${pair##*:}.safetensors"
done
cp "$OUT/prior.safetensors" "$OUT/weights/kdm_prior.safetensors"
stage evaluate echokdm evaluate --data "$DATA" --weights "$OUT/weights" --seg-weights "$OUT/seg" \
  --prior "$OUT/prior.safetensors" --device "$DEVICE" "${EVAL[@]}" --report "$OUT/evaluate" --overwrite
log "report: $OUT/evaluate/summary.md"
