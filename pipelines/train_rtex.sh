#!/usr/bin/env bash
# Issue 21, item 2 (real texture, exact motion): the shipped K2F fine-tuned on phantom pairs plus real-texture pairs
# (phantom motion carried onto the frames of one real loop, echokdm/train/texture.py), scored leave-one-loop-out.
# The two real loops are also the only real test loops: a K2F that saw one loop's frames is scored on the other
# loop and on the phantom only. Run from the repository root with the venv active (CPU, 2 threads; nice on a shared
# machine). ACUSON: the second loop (default ../shared/data/real/acuson_a4c.dcm).
set -euo pipefail
ACUSON=${ACUSON:-../shared/data/real/acuson_a4c.dcm}

# one cine per folder (data.texture_sources of the configs read cine-folder sources)
mkdir -p runs/rtex/sonosite runs/rtex/acuson
ln -sfn "$(python -c 'from echokdm.data import sample_path; print(sample_path("sonosite"))')" runs/rtex/sonosite/sonosite.dcm
ln -sfn "$(realpath "$ACUSON")" runs/rtex/acuson/acuson.dcm

# 1. look at the pairs (runs/rtex/pairs_*.png) and score the shipped flow autoencoder on them
for loop in sonosite acuson; do python pipelines/bench/texture_pairs.py --cine runs/rtex/$loop; done

# 2. the control (phantom pairs only, same recipe) and one K2F per real loop's texture
for cfg in k2f_ft_phantom k2f_rtex_sonosite k2f_rtex_acuson; do
  echokdm train k2f --config pipelines/configs/$cfg.yaml --out runs/$cfg --overwrite
done

# 3. scores against the shipped K2F (paired). K2F flow error against exact flows: phantom validation pairs and
#    real-texture pairs of the held-out loop; then the whole KDM on each real loop (the control and the K2F trained
#    on the other loop's texture) and on the phantom validation split (all three)
C=runs/k2f_ft_phantom/best.safetensors; S=runs/k2f_rtex_sonosite/best.safetensors; A=runs/k2f_rtex_acuson/best.safetensors
python pipelines/bench/k2f_val.py --k2f kdm_k2f --k2f $C --k2f $S --texture runs/rtex/acuson
python pipelines/bench/k2f_val.py --k2f kdm_k2f --k2f $C --k2f $A --texture runs/rtex/sonosite
python pipelines/bench/k2f_val.py --k2f $C --k2f $S --texture runs/rtex/acuson  # texture vs the control, paired
python pipelines/bench/k2f_val.py --k2f $C --k2f $A --texture runs/rtex/sonosite
steps="python pipelines/bench/kdm_steps.py --steps 10 --cases 24 --seeds 6 --threads 1 --work runs/rtex/steps"
$steps --skip-phantom --real acuson --acuson "$ACUSON" --k2f $C --k2f $S
$steps --skip-phantom --real sonosite --k2f $C --k2f $A
$steps --real '' --k2f $C --k2f $S --k2f $A

# 4. the ES comparison pictures (comparison.png) of each real loop: shipped, the K2F that never saw it, the control
echokdm predict --sample --out runs/rtex/predict_sonosite_shipped --overwrite
echokdm predict --sample --weights runs/k2f_rtex_acuson --out runs/rtex/predict_sonosite_rtex --overwrite
for run in shipped rtex ctrl; do
  case $run in shipped) w=();; rtex) w=(--weights runs/k2f_rtex_sonosite);; ctrl) w=(--weights runs/k2f_ft_phantom);; esac
  echokdm predict --dicom "$ACUSON" "${w[@]}" --out runs/rtex/predict_acuson_$run --overwrite
done
