import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from minigan import backend

# Gradient checks take a few hundred milliseconds an example: no per-example deadline.
settings.register_profile("default", deadline=None, max_examples=50,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def pytest_collection_modifyitems(config, items):
    ok, reason = backend.cupy_available()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA device: {reason}")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def mnist_dir():
    """The real MNIST test split kept beside the repository (never copied into it)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"the real MNIST test split is not at {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
