"""Synthetic apical four-chamber echo loops with exact masks and exact motion (echokdm's own data).

``sample_params(seed)`` draws a subject and an acquisition, ``simulate(params)`` renders the loop with
its ground truth (labels, displacement fields, ED/ES, volumes, EF); ``split_seeds`` gives disjoint seeds
for train/val/test; :mod:`echokdm.phantom.layouts` writes DICOM, CAMUS and EchoNet-Dynamic folders
(read back by :mod:`echokdm.data.camus` and :mod:`echokdm.data.echonet`).
"""

from echokdm.phantom.params import PhantomParams
from echokdm.phantom.sampling import sample_params, split_seeds
from echokdm.phantom.simulate import PhantomLoop, area_length_volume, simulate

__all__ = ["PhantomParams", "PhantomLoop", "area_length_volume", "sample_params", "simulate", "split_seeds"]
