"""MRGAN (Che et al. 2017): an encoder E and a reconstruction term pull G back to every mode."""
from .. import losses
from .base import Cure, Option, weight


class MRGAN(Cure):
    """An encoder E (x -> z; network "E", trained with G at G's learning rate). In G's step, after
    the usual backward, one more pass through G on the real batch's codes adds to G's and E's
    gradients
        λ1 · mean (x − G(E(x)))²   (the geometric regulariser)
      + λ2 · L_G(D(G(E(x))))       (the mode regulariser: G(E(x)) should look real to D),
    so every real sample, whichever mode it is in, has a z that G maps back to it. G's BatchNorm
    running statistics are held through that pass: they describe G on z ~ N(0, I), which is what
    sampling in eval mode uses, and E's codes have another scale (measured on MNIST: mixing the
    two passes' statistics made every eval-mode sample faint).
    mrgan_diffusion: the manifold-diffusion variant's second discriminator "D2" (trained at D's
    rate) learns to tell G(E(x)) (its "real") from G(z), and G's loss gains −log D2(G(z)): the
    fakes are pulled towards the regions G(E(x)) covers. (The paper's MDGAN also retrains D
    between x and G(E(x)) in a separate step; here D keeps seeing x against G(z).)"""
    name = "mrgan"
    options = (Option("mrgan", None, "MRGAN (Che et al. 2017): an encoder E, and G's loss gains W × the mean "
                      "squared error of G(E(x)) against x (0.2 with no value) plus --mrgan-mode × the adversarial "
                      "loss of G(E(x))", check=lambda v: v >= 0, expect="a weight >= 0", type=float, metavar="W",
                      nargs="?", const=0.2),
               weight("mrgan_mode", "with --mrgan: the weight of the mode regulariser (the adversarial loss of "
                      "G(E(x))).", default=0.4),
               Option("mrgan_diffusion", False, "with --mrgan: the manifold-diffusion variant: a second "
                      "discriminator D2 between G(E(x)) and G(z), whose loss G also minimises",
                      check=lambda v: isinstance(v, bool), expect="True or False", action="store_true"))

    @classmethod
    def on(cls, values):
        return values["mrgan"] is not None

    def __init__(self, values):
        self.geometric, self.mode, self.diffusion = values["mrgan"], values["mrgan_mode"], values["mrgan_diffusion"]
        self.networks = ("E", "D2") if self.diffusion else ("E",)

    def attach(self, gan):
        gan.lr["E"], gan.betas["E"] = gan.lr["G"], gan.betas["G"]
        if self.diffusion:
            gan.lr["D2"], gan.betas["D2"] = gan.lr["D"], gan.betas["D"]
            gan.taps.add("g_fake_pixels", lambda fake, real: self._diffusion(gan, fake))

    def _diffusion(self, gan, fake):
        """−log D2(G(z)) on G's output, through D2 as it stands (D2's own gradients untouched)."""
        D2 = gan.nets["D2"]
        value, ds = losses.bce_with_logits(D2.forward(fake), 1.0)
        return value, D2.backward(ds, param_grads=False)

    def g_extra(self, gan, real, fake):
        G, D, E = gan.G, gan.D, gan.nets["E"]
        before = {name: g.copy() for name, g in G.grads.items()}
        running = [(layer, dict(layer.buffers)) for layer in G.leaves() if layer.buffers]
        recon = G.forward(E.forward(real))
        for layer, kept in running:
            layer.buffers.update(kept)
        geometric, drecon = losses.mse(recon, real)
        mode, ds = gan.taps.at("g_fake", D.forward(recon))
        drecon = recon.dtype.type(self.geometric) * drecon + recon.dtype.type(self.mode) * D.backward(ds, param_grads=False)
        E.backward(G.backward(drecon))
        for name, layer, k in G.named_parameters():
            layer.grads[k] += before[name]
        gan.opt["E"].step()
        if self.diffusion:
            self._train_d2(gan, recon, fake)
        return self.geometric * geometric + self.mode * mode

    def _train_d2(self, gan, recon, fake):
        """One step of D2: G(E(x)) labelled 1, G(z) labelled 0 (both held fixed). Returns its loss."""
        D2 = gan.nets["D2"]
        loss_real, ds = losses.bce_with_logits(D2.forward(recon), 1.0)
        D2.backward(ds)
        before = {name: g.copy() for name, g in D2.grads.items()}
        loss_fake, ds = losses.bce_with_logits(D2.forward(fake), 0.0)
        D2.backward(ds)
        for name, layer, k in D2.named_parameters():
            layer.grads[k] += before[name]
        gan.opt["D2"].step()
        return loss_real + loss_fake
