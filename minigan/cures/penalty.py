"""Gradient penalties on D's input gradient: R1 and R2 (Mescheder et al. 2018), WGAN-GP
(Gulrajani et al. 2017), DRAGAN (Kodali et al. 2017), through the second-order pass."""
import numpy as np

from .. import penalties
from .base import Cure, Option, count, weight


class GradientPenalty(Cure):
    """In D's step, after its loss's backward: minigan.penalties.gradient_penalty of D at
        r1: the real batch;  r2: the fake batch;  wgan-gp: interpolates of the two;
        dragan: the real batch perturbed (the points drawn from seed and step, so a resume
        draws the same ones),
    its value added to L_D and its gradient to D's. gp_every K > 1 is StyleGAN2's lazy
    regularisation: the penalty every K-th D step with weight K·W, and D's Adam at lr·c with
    betas^c, c = K/(K + 1), which keeps the optimizer's effective step. R1 and R2 penalise D's
    gradient at the data or at G's samples (convergence near equilibrium); WGAN-GP and DRAGAN
    pull its norm to 1 (a soft Lipschitz bound, what --loss wgan needs)."""
    name = "gp"
    options = (Option("gp", None, "a penalty on D's input gradient: r1 (at real samples) or r2 (at fakes) "
                      "(Mescheder et al. 2018), wgan-gp (at interpolates, norm pulled to 1; Gulrajani et al. 2017), "
                      "dragan (at perturbed real samples; Kodali et al. 2017)",
                      check=lambda v: v in penalties.KINDS, expect=f"one of {', '.join(penalties.KINDS)}",
                      choices=list(penalties.KINDS)),
               weight("gp_weight", "with --gp: the penalty's weight (γ for R1/R2, λ for WGAN-GP/DRAGAN; 10 in "
                      "their papers).", default=10.0),
               count("gp_every", 1, 1, "with --gp: the penalty every K-th D step, K times as heavy, and D's "
                     "Adam rescaled by K/(K+1) (StyleGAN2's lazy regularisation).", metavar="K"))

    @classmethod
    def on(cls, values):
        return values["gp"] is not None

    def __init__(self, values):
        self.kind, self.weight, self.every = values["gp"], values["gp_weight"], values["gp_every"]
        self.lipschitz = self.kind in ("wgan-gp", "dragan")
        self.seed = None

    def attach(self, gan):
        self.seed = gan.seed
        if self.every > 1:
            c = self.every / (self.every + 1)
            gan.lr["D"] *= c
            gan.betas["D"] = tuple(b ** c for b in gan.betas["D"])

    def d_extra(self, gan, real, fake):
        t = getattr(gan.opt["D"], "t", 0)  # D's steps so far: which steps are penalised, and the draw
        if t % self.every:
            return 0.0
        rng = np.random.default_rng([self.seed, 7, t])
        x = {"r1": lambda: real, "r2": lambda: fake,
             "wgan-gp": lambda: penalties.interpolates(real, fake, rng),
             "dragan": lambda: penalties.dragan_perturb(real, rng)}[self.kind]()
        value, grads = penalties.gradient_penalty(gan.D, x, self.kind, self.weight * self.every)
        for name, layer, k in gan.D.named_parameters():
            layer.grads[k] += grads[name]
        return value
