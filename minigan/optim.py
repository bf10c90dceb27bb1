"""Optimizers: they read layer.grads and update layer.params in place, on any backend.

Computing gradients (a layer's backward) and applying them (step) are separate, so
gradients can be checked or combined before a step.
"""
import numpy as np

from . import backend
from .kernels import elementwise_numba
from .layers.base import on_fast_path


def compiled(*arrays):
    """Whether an update runs as one compiled pass: NumPy's fast path, arrays of one dtype, C-contiguous."""
    return (on_fast_path(arrays[0]) and all(a.flags.c_contiguous for a in arrays)
            and len({a.dtype for a in arrays}) == 1)


class Optimizer:
    """Holds (name, layer, key) for each parameter of `model` (a Sequential or one Layer)."""

    def __init__(self, model, lr):
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: expected lr > 0, got {lr!r}")
        self.lr = lr
        self.slots = list(model.named_parameters())
        self.state = {}  # "<buffer>/<param name>" -> array, created at the first step

    def step(self):
        for name, layer, k in self.slots:
            p, g = layer.params[k], layer.grads.get(k)
            if g is None or g.shape != p.shape:
                got = "none (backward did not set grads[" + repr(k) + "])" if g is None else f"shape {g.shape}"
                raise ValueError(f"{type(self).__name__}: expected a gradient of shape {p.shape} for "
                                 f"{name} ({layer}), got {got}")
        self._begin_step()
        for name, layer, k in self.slots:
            self._update(name, layer.params[k], layer.grads[k])

    def _buffer(self, key, p):
        if key not in self.state:
            self.state[key] = backend.xp_of(p).zeros_like(p)
        return self.state[key]

    def _begin_step(self):
        pass

    def state_dict(self):
        return dict(self.state)

    def load_state_dict(self, state):
        """Moments by name, moved onto each parameter's backend and dtype; checked first."""
        params = {name: layer.params[k] for name, layer, k in self.slots}
        for key, v in state.items():
            name = key.split("/", 1)[-1]
            if name not in params or tuple(v.shape) != tuple(params[name].shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key} with shape "
                                 f"{tuple(v.shape)} matches no parameter of this model")
        self.state = {}
        for key, v in state.items():
            p = params[key.split("/", 1)[-1]]
            self.state[key] = backend.to_backend(v, backend.xp_of(p), p.dtype)


class SGD(Optimizer):
    """v = momentum·v + g;  p -= lr·v   (PyTorch's convention; momentum=0 is plain SGD)."""

    def __init__(self, model, *, lr, momentum=0.0):
        super().__init__(model, lr)
        self.momentum = momentum

    def _update(self, name, p, g):
        if self.momentum:
            v = self._buffer("v/" + name, p)
            v *= self.momentum
            v += g
            g = v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as PyTorch computes it:

    m = β1·m + (1-β1)·g;   v = β2·v + (1-β2)·g²;
    p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)
    """

    def __init__(self, model, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(model, lr)
        self.betas, self.eps = tuple(betas), eps
        self.t = 0

    def _begin_step(self):
        self.t += 1

    def _update(self, name, p, g):
        f = p.dtype.type  # scalars in the parameter's dtype: NumPy and CuPy (NEP 50) round alike
        b1, b2 = self.betas
        m, v = self._buffer("m/" + name, p), self._buffer("v/" + name, p)
        if compiled(p, g, m, v):  # the lines below in one compiled pass (kernels/elementwise_numba.py)
            elementwise_numba.adam(p, g, m, v, b1, 1 - b1, b2, 1 - b2, np.sqrt(1 - b2 ** self.t),
                                   self.eps, self.lr / (1 - b1 ** self.t))
            return
        m *= f(b1)
        m += f(1 - b1) * g
        v *= f(b2)
        v += f(1 - b2) * (g * g)
        denom = backend.xp_of(v).sqrt(v)
        denom /= f(np.sqrt(1 - b2 ** self.t))
        denom += f(self.eps)
        p -= f(self.lr / (1 - b1 ** self.t)) * (m / denom)

    def state_dict(self):
        return {"t": np.asarray(self.t), **self.state}

    def load_state_dict(self, state):
        state = dict(state)
        if "t" not in state:
            raise ValueError("Adam.load_state_dict: expected the step count 't', found none")
        t = int(state.pop("t"))
        super().load_state_dict(state)
        self.t = t


class EMA:
    """An exponential moving average of a model's weights (Yazıcı et al. 2019), kept in a copy
    of the model (``self.model``), updated after each optimizer step of the original:

        θ_EMA ← β_t θ_EMA + (1 − β_t) θ,   β_t = min(decay, 0.5^(1 / (0.05 t)))   at update t

    The ramp is StyleGAN2-ADA's: a half-life of 5% of the steps so far, so that early
    updates forget the random initialisation (a fixed 0.9999 would keep 89% of it after
    1,200 steps); `decay` caps it. Buffers (BatchNorm's running statistics) are copied, not
    averaged: averaged weights with stale statistics give grey images. Copied, they are only a
    start, the source's statistics and not the average's: recalibrate() measures the average's
    own, and ``fresh`` says whether it has since the last update or load.
    """

    def __init__(self, model, *, decay=0.999):
        import copy

        if not 0 <= decay < 1:
            raise ValueError(f"EMA: expected 0 <= decay < 1, got {decay!r}")
        self.decay, self.t = decay, 0
        self.source = model
        self.model = copy.deepcopy(model)
        self.fresh = False  # whether the model's BatchNorm statistics are its own (recalibrate)

    def beta(self, t):
        return min(self.decay, 0.5 ** (1 / (0.05 * t)))

    def update(self):
        self.t += 1
        b = self.beta(self.t)
        pairs = zip(self.model.named_parameters(), self.source.named_parameters())
        for (_, shadow, k), (_, layer, _) in pairs:
            e = shadow.params[k]
            e *= b
            e += (1 - b) * layer.params[k]
        self._copy_buffers(self.model, self.source)
        self.fresh = False

    @staticmethod
    def chain(model):
        """The model's layers in the order its forward runs them, plain Sequentials opened up
        (what recalibrate walks); ValueError if a BatchNorm sits inside any other layer
        (a Heads, a Tap), whose forward is not a plain chain."""
        from .layers.batchnorm import BatchNorm
        from .layers.sequential import Sequential

        layers = []
        for layer in model.layers if type(model) is Sequential else [model]:
            if type(layer) is Sequential:
                layers += EMA.chain(layer)
            elif not isinstance(layer, BatchNorm) and any(isinstance(x, BatchNorm) for x in layer.leaves()):
                raise ValueError(f"EMA: expected BatchNorm layers in a chain of Sequentials, found one "
                                 f"inside {type(layer).__name__}, whose statistics it cannot measure")
            else:
                layers.append(layer)
        return layers

    def recalibrate(self, draw, *, values=16_384, at_least=512, chunk=256):
        """Measure the averaged model's BatchNorm statistics on the average itself.

        Copied at each update, they are the source's statistics, not the average's, and the
        samples are worse for it (docs/results.md, "Third round", has the numbers). So, as SWA
        does for averaged weights (Izmailov et al. 2018, "update_bn"; BigGAN's "standing
        statistics"), each BatchNorm, in order, gets

            running_mean = mean over batches of the batch mean,
            running_var  = mean over batches of the unbiased batch variance

        of its input, with the layers before it in eval mode (as the model samples) on inputs
        from `draw(n)`. A BatchNorm's statistics depend only on the layers before it, so each
        runs only those, on enough inputs for `values` values per feature and at least
        `at_least` inputs, in whole chunks of `chunk`: 16,384 inputs after a Dense layer (one
        value per input each, the noisy case), 512 after a 14x14 map. The mean over batches is
        BatchNorm's own update at momentum 1/k on batch k. If `draw` fails, every momentum is
        put back and the model is not fresh (its statistics are then part measured).
        """
        from .layers.batchnorm import BatchNorm

        layers = self.chain(self.model)
        self.fresh = False

        def before(i, x):  # the input of layer i: layers 0..i-1 in eval mode
            for layer in layers[:i]:
                x = layer.forward(x, False)
            return x

        for i, bn in enumerate(layers):
            if not isinstance(bn, BatchNorm):
                continue
            per_input = int(np.prod(before(i, draw(2)).shape[2:]))  # values per feature per input
            batches = -(-max(at_least, values // per_input) // chunk)
            momentum = bn.momentum
            try:
                for k in range(1, batches + 1):
                    bn.momentum = 1 / k
                    bn.forward(before(i, draw(chunk)), True)
            finally:
                bn.momentum = momentum
        self.fresh = True

    @staticmethod
    def _copy_buffers(shadow, source):
        for a, b in zip(shadow.leaves(), source.leaves()):
            for k, v in b.buffers.items():
                a.buffers[k] = v.copy()

    def state_dict(self):
        return {"t": np.asarray(self.t), **self.model.state_dict()}

    def load_state_dict(self, state):
        state = dict(state)
        if "t" not in state:
            raise ValueError("EMA.load_state_dict: expected the update count 't', found none")
        self.t = int(state.pop("t"))
        self.model.load_state_dict(state)
        self.fresh = False  # measured again before use: the statistics the file holds for one the
        # EMA cure wrote (the same weights and inputs), the average's own for an older one
