"""echokdm: key-point guided, flow-guided diffusion for echocardiography frame prediction."""

__version__ = "0.1.0"
