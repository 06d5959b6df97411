"""MONAI-style transforms (array + dictionary versions); each topic lives in its own submodule."""

from echokdm.transforms.load import LoadCineLoop, LoadCineLoopd

__all__ = ["LoadCineLoop", "LoadCineLoopd"]
