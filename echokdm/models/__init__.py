"""echokdm's networks: ofnet, flow_ae, k2f, f2i, k2i, prior (keypoint motion), seg (segmenter), their
diffusion and conditioning helpers, and loading from weights files. Training lives in :mod:`echokdm.train`."""
