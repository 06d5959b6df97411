"""Defaults shared by the commands, the library and the harness (one place for each)."""

#: denoising steps of F2I (and of K2F where K2F's flows are made for training or adaptation)
DEFAULT_STEPS = 10
#: denoising steps of K2F at inference: the fewest whose PSNR, SSIM, LV Dice and EF error stay within 10 steps'
#: 95% CI, and whose paired differences to 10 steps are not significantly worse, on 24 phantom validation loops and
#: the two real loops (1 step fails; ``pipelines/bench/kdm_steps.py``, model card)
K2F_STEPS = 2
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
#: physical ranges a header value must lie in to be used (outside: unknown, as if absent; options: refused)
FRAME_TIME_MS_RANGE = (1.0, 2000.0)  # 1000 to 0.5 frames per second
SPACING_MM_RANGE = (0.001, 10.0)  # 1 micrometre to 1 cm per pixel
HEART_RATE_BPM_RANGE = (20.0, 300.0)
#: EFs (percent) a heart can have: below 0 the end-systolic volume exceeds the end-diastolic one; an EF outside
#: is reported but listed in the report's ``ef.implausible`` and flagged on the command line
EF_PLAUSIBLE = (0.0, 100.0)
#: points between the EF the prediction measures and its target keypoints' EF above which ``predict`` warns that the
#: predicted LV does not follow the keypoints (issue 21's bound on a prediction's EF error)
EF_GAP_WARNING = 10.0
#: points between the EF a prediction measures and its target keypoints' EF above which the prediction is made a
#: second time with K2F held to the keypoints, and the closer of the two kept (:mod:`echokdm.predict.ef_check`)
EF_CHECK = 5.0
#: most frames of one predicted sequence (``--frames``, manifest ``frames``)
MAX_SEQUENCE_FRAMES = 1000
#: bytes of memory a predicted frame needs per source pixel (frames, flows, labels, pictures; measured with margin)
PREDICT_BYTES_PER_PIXEL = 64
