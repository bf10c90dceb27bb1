"""Numbers for what a GAN produces, from a small MNIST classifier built from minigan's layers.

- classifier FID: the Fréchet distance between Gaussians fitted to the classifier's penultimate
  features of two sample sets: ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)
- classifier IS: exp E_x KL(p(y|x) ‖ p(y)), between 1 (one class, or unsure) and 10
- KID: the unbiased MMD² with the cubic kernel k(x, y) = (xᵀy/d + 1)³ on the same features,
  averaged over random subsets (mean and standard deviation)
- the class histogram of the samples and its KL divergence to uniform
- fid_shift: FID under a second extractor, the same network trained on the test split with
  random shifts, so that a cure which matches one classifier's features is caught

Both classifiers' weights ship with the package (minigan/weights/), made by
`python demos/train_classifier.py`; the command and its held-out accuracy are stored beside them.
"""
from pathlib import Path

import numpy as np

from . import checkpoint
from .layers import Conv2D, Dense, Flatten, LeakyReLU, Sequential
from .losses import log_softmax

WEIGHTS = Path(__file__).resolve().parent / "weights" / "mnist_classifier.npz"
SHIFT_WEIGHTS = WEIGHTS.with_name("mnist_classifier_shift.npz")
FEATURES = 64


def classifier(seed=0):
    """(N, 1, 28, 28) in [-1, 1] -> 10 logits; layer 6's output (N, 64) is the feature vector."""
    return Sequential(
        Conv2D(1, 16, 5, stride=2, padding=2, rng=seed), LeakyReLU(0.1),
        Conv2D(16, 32, 5, stride=2, padding=2, rng=seed + 1), LeakyReLU(0.1), Flatten(),
        Dense(32 * 7 * 7, FEATURES, rng=seed + 2), LeakyReLU(0.1), Dense(FEATURES, 10, rng=seed + 3))


def load_classifier(path=WEIGHTS):
    """The shipped classifier and its record ({"command": ..., "test_accuracy": ...})."""
    arrays, meta = checkpoint.load(path)
    model = classifier()
    model.load_state_dict(arrays)
    return model, meta


def features_and_probs(model, images, batch=500):
    """Penultimate features (N, 64) and class probabilities (N, 10), float64, on the host."""
    feats, probs = [], []
    for i in range(0, len(images), batch):
        x = np.asarray(images[i:i + batch], np.float32)
        for layer in model.layers[:7]:
            x = layer.forward(x, training=False)
        feats.append(x.astype(np.float64))
        logits = model.layers[7].forward(x, training=False).astype(np.float64)
        probs.append(np.exp(log_softmax(logits)))
    return np.concatenate(feats), np.concatenate(probs)


def _sqrtm_psd(A):
    w, V = np.linalg.eigh((A + A.T) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def frechet_distance(mu1, cov1, mu2, cov2):
    """‖μ₁ − μ₂‖² + Tr(Σ₁) + Tr(Σ₂) − 2 Tr((Σ₁Σ₂)^½), with Tr((Σ₁Σ₂)^½) = Tr((Σ₁^½ Σ₂ Σ₁^½)^½)
    (a symmetric PSD matrix, so eigenvalues give it exactly; no complex square roots)."""
    s1 = _sqrtm_psd(cov1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(s1 @ cov2 @ s1), 0, None)).sum()
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * cross)


def fid(feats1, feats2):
    return frechet_distance(feats1.mean(0), np.cov(feats1, rowvar=False), feats2.mean(0), np.cov(feats2, rowvar=False))


def inception_score(probs, eps=1e-12):
    """exp(mean over samples of KL(p(y|x) ‖ p(y)))."""
    p_y = probs.mean(axis=0, keepdims=True)
    kl = (probs * (np.log(probs + eps) - np.log(p_y + eps))).sum(axis=1)
    return float(np.exp(kl.mean()))


def kid(feats1, feats2, *, subsets=50, subset_size=1000, seed=0):
    """(mean, std) over random subsets of the unbiased MMD² with k(x, y) = (xᵀy/d + 1)³."""
    rng = np.random.default_rng(seed)
    d = feats1.shape[1]
    m = min(subset_size, len(feats1), len(feats2))
    values = []
    for _ in range(subsets):
        X = feats1[rng.choice(len(feats1), m, replace=False)]
        Y = feats2[rng.choice(len(feats2), m, replace=False)]
        kxx, kyy, kxy = ((A @ B.T / d + 1) ** 3 for A, B in ((X, X), (Y, Y), (X, Y)))
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def class_histogram(probs):
    """The fraction of samples the classifier assigns to each class, (10,)."""
    return np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)


def kl_to_uniform(hist):
    """KL(hist ‖ uniform) = Σ_k h_k log(h_k K): 0 for a uniform histogram, log K for one class."""
    h = np.asarray(hist, np.float64)
    K = len(h)
    h = h[h > 0]
    return float(np.sum(h * np.log(h * K)))


def evaluate(images, reference, model=None, second=None):
    """All the metrics for `images` against `reference` images ((N, 1, 28, 28) in [-1, 1]);
    `fid_shift` is FID under the second extractor (`second`, by default SHIFT_WEIGHTS')."""
    model = model or load_classifier()[0]
    second = second or load_classifier(SHIFT_WEIGHTS)[0]
    f, p = features_and_probs(model, images)
    fr, _ = features_and_probs(model, reference)
    hist = class_histogram(p)
    kid_mean, kid_std = kid(f, fr)
    fid_shift = fid(features_and_probs(second, images)[0], features_and_probs(second, reference)[0])
    return dict(fid=fid(f, fr), fid_shift=fid_shift, inception_score=inception_score(p), kid=kid_mean,
                kid_std=kid_std, class_histogram=[round(float(h), 4) for h in hist],
                kl_to_uniform=kl_to_uniform(hist), classes_present=int((hist > 0).sum()))


# ---- the 2-D mode-collapse benchmark (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018) ----

def mixture(name):
    """(means (K, 2), σ) of a benchmark mixture: "ring", 8 Gaussians on the unit circle
    (angles 2πk/8, k = 0..7 — not linspace(0, 2π, 8), which repeats one) with σ = 0.01;
    "grid", 25 Gaussians on {−4, −2, 0, 2, 4}² with σ = 0.05."""
    if name == "ring":
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.01
    if name == "grid":
        return np.array([(x, y) for x in range(-4, 5, 2) for y in range(-4, 5, 2)], np.float64), 0.05
    raise ValueError(f"mixture: expected 'ring' or 'grid', got {name!r}")


def sample_mixture(name, n, rng):
    """n points from the mixture, equal weights, as float32 (n, 2)."""
    means, sigma = mixture(name)
    rng = np.random.default_rng(rng)
    return (means[rng.integers(0, len(means), n)] + sigma * rng.standard_normal((n, 2))).astype(np.float32)


def mixture_score(samples, name):
    """VEEGAN/PacGAN scoring: a sample is high-quality when within 3σ of its nearest mean; a mode
    is captured when it is the nearest mean of at least one high-quality sample. Returns
    modes captured, the fraction of high-quality samples, and the reverse KL divergence
    KL(q ‖ uniform) of the high-quality samples' mode histogram q."""
    means, sigma = mixture(name)
    d = np.linalg.norm(np.asarray(samples, np.float64)[:, None, :] - means[None], axis=2)
    nearest, dist = d.argmin(axis=1), d.min(axis=1)
    good = dist <= 3 * sigma
    counts = np.bincount(nearest[good], minlength=len(means))
    hist = counts / max(counts.sum(), 1)
    return dict(modes=int((counts > 0).sum()), high_quality=float(good.mean()),
                reverse_kl=kl_to_uniform(hist) if counts.sum() else float("inf"))
