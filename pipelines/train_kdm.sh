#!/usr/bin/env bash
# The exact commands that produced the shipped KDM weights (echokdm/weights/{ofnet,kdm_flow_vae,kdm_k2f,
# kdm_f2i,kdm_k2i,kdm_prior}.safetensors) on CPU (2 threads, no GPU). Run from the repository root with
# the venv active. Several GPUs/processes: replace `echokdm train` by
# `torchrun --nproc_per_node N -m echokdm train` (DDP; gloo on CPU, NCCL on GPU).
set -euo pipefail
ship() { python -c "from echokdm import weights; print(weights.export('$1', '$2', '$3'))"; }

# 1. OF-net (unsupervised optical flow); scored against TV-L1/iLK, and the flow source of the paper-recipe runs (step 7)
echokdm train ofnet --config pipelines/configs/ofnet.yaml --out runs/ofnet --overwrite
# 2. flow autoencoder of the correction K2F generates (exact flow minus keypoint flow)
echokdm train flowae --config pipelines/configs/flowae.yaml --out runs/flowae --overwrite
# 3. K2F on the exact phantom flows (shipped; the paper's OF-net-flow recipe is a comparison run in step 7)
echokdm train k2f --config pipelines/configs/k2f.yaml --out runs/k2f --overwrite
# 4. ship fp16 copies (sha256 in the manifest and the model card): F2I learns from the shipped K2F's flows
ship runs/ofnet/best.safetensors ofnet "OF-net: unsupervised optical flow for echo frame pairs (112x112)"
ship runs/flowae/best.safetensors kdm_flow_vae "KDM flow autoencoder (2x112x112 flow -> 4x28x28 latent)"
ship runs/k2f/best.safetensors kdm_k2f "KDM K2F latent denoiser (keypoints -> flow latent)"
# 5. F2I on the flows the shipped K2F generates from each pair's keypoints (what it gets at inference); the k2i ablation
echokdm train f2i --config pipelines/configs/f2i_k2f.yaml --out runs/f2i_k2f --overwrite
echokdm train k2i --config pipelines/configs/k2i.yaml --out runs/k2i --overwrite
# 6. keypoint motion prior (closed-form fit on the training loops' ED->ES keypoint trajectories)
python pipelines/fit_prior.py --config pipelines/configs/k2f.yaml --out runs/prior.safetensors
ship runs/f2i_k2f/best.safetensors kdm_f2i "KDM F2I denoiser (flow -> frame residual over the warped source), trained on the shipped K2F's flows"
# 5b. K2F for 20 and 40 keypoints: the K2F of step 4 (whose flows F2I learned from) fine-tuned on both counts
echokdm train k2f --config pipelines/configs/k2f_kp20.yaml --out runs/k2f_kp20 --overwrite
ship runs/k2f_kp20/best.safetensors kdm_k2f "KDM K2F latent denoiser (20 or 40 keypoints -> flow latent)"
ship runs/k2i/best.safetensors kdm_k2i "k2i ablation denoiser (keypoints -> frame, no flow)"
ship runs/prior.safetensors kdm_prior "Keypoint motion prior (ridge/PCA of ED->ES motion of 40 keypoints)"

# 7. comparisons only (not shipped): the KDM paper's recipe (K2F and F2I on OF-net flows); F2I on exact flows
echokdm train k2f --config pipelines/configs/k2f_ofnet.yaml --out runs/k2f_ofnet --overwrite
echokdm train f2i --config pipelines/configs/f2i_ofnet.yaml --out runs/f2i_ofnet --overwrite
echokdm train f2i --config pipelines/configs/f2i.yaml --out runs/f2i --overwrite
