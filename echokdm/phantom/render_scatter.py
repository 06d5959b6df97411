"""The ``scatter`` renderer: moving scatterers splatted as complex baseband echoes onto a polar beam grid,
Gaussian PSF with a side-lobe skirt, log compression, bilinear scan conversion
(:mod:`echokdm.phantom.imaging` holds the model; this module drives it frame by frame)."""

from __future__ import annotations

import numpy as np

from echokdm.phantom.anatomy import Anatomy
from echokdm.phantom.imaging import EchoModel, Probe
from echokdm.phantom.motion import Deformation, Valves
from echokdm.phantom.params import PhantomParams
from echokdm.phantom.render import FrameState


class ScatterRenderer:
    """The original phantom renderer behind the :class:`~echokdm.phantom.render.Renderer` interface.

    Args:
        p: parameters.
        anatomy: reference geometry.
        deform: the loop's deformation (moves the tissue scatterers).
        rng: random generator (scatterers, textures, clutter, leaflets).
    """

    def __init__(self, p: PhantomParams, anatomy: Anatomy, deform: Deformation, rng: np.random.Generator) -> None:
        self.anat, self.deform = anatomy, deform
        self.fan = Probe(p)
        model = self.model = EchoModel(p, anatomy, self.fan, rng)
        self.valves = Valves(anatomy, rng, density=2.0 * model.density50)
        # only scatterers inside the deformation's box ever move
        moving = deform.in_box(model.U, model.V)
        self.mU, self.mV, self.m_r = model.U[moving], model.V[moving], model.r[moving]
        self.sx, self.sy = anatomy.to_image(model.U[~moving], model.V[~moving])
        self.s_ph = model.phase(model.r[~moving], model.r[~moving])
        self.amp = np.concatenate([model.amp[moving], model.amp[~moving]])
        self.blood = np.flatnonzero(np.concatenate([model.blood[moving], model.blood[~moving]]))

    def frame(self, state: FrameState) -> np.ndarray:
        """(H, W) float32 grey image of one frame (the first frame calibrates the display)."""
        anat, model = self.anat, self.model
        xm, ym = anat.to_image(*self.deform.forward(self.mU, self.mV, state.c, state.e, inside=True))
        lu, lv, la = self.valves.points(state.hinges, state.o_mv, state.o_tv)
        xl, yl = anat.to_image(lu, lv)
        ph = np.concatenate([model.phase(np.hypot(xm, ym), self.m_r), self.s_ph, model.two_k * np.hypot(xl, yl)])
        ph[self.blood] += state.rng.uniform(0, 2 * np.pi, self.blood.size)  # flowing blood: fresh speckle
        echo = model.beamform(
            np.concatenate([xm, self.sx, xl]),
            np.concatenate([ym, self.sy, yl]),
            np.concatenate([self.amp, la * model.leaflet_amp]),
            ph,
        )
        if state.index == 0:
            model.calibrate(echo, state.labels == 2)
        return model.to_image(echo, state.rng)
