"""Defaults shared by the commands, the library and the harness (one place for each)."""

#: denoising steps of K2F and of F2I
DEFAULT_STEPS = 10
#: accepted EF range (percent) of a requested target EF and of a phantom heart
EF_LIMITS = (5.0, 90.0)
#: keypoints per frame of the KDM models and the motion prior (endocardium + epicardium)
N_KEYPOINTS = 40
#: shipped weights used when none are given, by model
SEG_WEIGHTS = "seg_a4c"
FLOW_VAE_WEIGHTS = "kdm_flow_vae"
K2F_WEIGHTS = "kdm_k2f"
F2I_WEIGHTS = "kdm_f2i"
PRIOR_WEIGHTS = "kdm_prior"
K2I_WEIGHTS = "kdm_k2i"
