"""mmd_test: the permutation two-sample test's statistic, its size and its power, with fixed seeds."""
import numpy as np
import pytest

from minigan.kernels import default_sigmas, mmd2, mmd_test


def test_statistic_is_the_unbiased_mmd2_and_the_p_value_its_rank():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((45, 4)) + 0.3
    r = mmd_test(X, Y, permutations=40, seed=1)
    assert r.sigmas == default_sigmas(X, Y)
    assert abs(r.mmd2 - float(mmd2(X, Y, r.sigmas, unbiased=True)[0])) <= 1e-12
    # the p-value, recomputed from relabellings drawn the same way
    perm_rng = np.random.default_rng(1)
    Z = np.concatenate([X, Y])
    null = []
    for _ in range(40):
        take = np.zeros(75, bool)
        take[perm_rng.permutation(75)[:30]] = True
        null.append(float(mmd2(Z[take], Z[~take], r.sigmas, unbiased=True)[0]))
    assert r.p_value == (1 + sum(v >= r.mmd2 - 1e-12 for v in null)) / 41
    assert mmd_test(X, Y, permutations=40, seed=1) == r  # the same seed, the same answer


def test_size_and_power_at_five_percent():
    """Under H0 (both N(0, I)) it rejects about 5% of 200 draws; shifted by 1.5 standard deviations
    in one coordinate (two clouds plainly apart on a plot), nearly all of 40."""
    rng = np.random.default_rng(2024)
    same = [mmd_test(rng.standard_normal((40, 2)), rng.standard_normal((40, 2)), permutations=99, seed=k).p_value
            for k in range(200)]
    rejected = np.mean(np.array(same) <= 0.05)
    assert 0.02 <= rejected <= 0.09  # binomial(200, 0.05): 10 ± 3
    shift = np.array([1.5, 0.0])
    shifted = [mmd_test(rng.standard_normal((40, 2)), rng.standard_normal((40, 2)) + shift, permutations=99,
                        seed=k).p_value for k in range(40)]
    assert np.mean(np.array(shifted) <= 0.05) >= 0.95


def test_many_permutations_go_in_several_passes(monkeypatch):
    from minigan.kernels import two_sample
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((25, 3))
    whole = mmd_test(X, Y, permutations=30, seed=5)
    monkeypatch.setattr(two_sample, "WEIGHT_BYTES", 8 * 45 * 4)  # three labellings per pass
    parts = mmd_test(X, Y, permutations=30, seed=5)
    # the same labellings; each pass's K·U is a matmul of another width, which may round differently
    assert parts.p_value == whole.p_value and parts.sigmas == whole.sigmas
    assert parts.mmd2 == pytest.approx(whole.mmd2, rel=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(permutations=0), r"mmd_test: expected permutations, an integer >= 1, got 0"),
    (dict(sigmas=[-1.0]), r"mmd_test: expected one or more finite bandwidths sigma > 0, got \[-1.0\]"),
])
def test_bad_arguments(kwargs, match):
    X = np.random.default_rng(0).standard_normal((5, 2))
    with pytest.raises(ValueError, match=match):
        mmd_test(X, X + 1, **kwargs)


def test_too_few_samples():
    with pytest.raises(ValueError, match="mmd_test: needs at least 2 samples in X and Y, got 1 and 5"):
        mmd_test(np.zeros((1, 2)), np.ones((5, 2)), [1.0])


def test_evaluate_reports_the_test_on_the_classifiers_features(mnist_dir, tmp_path):
    """demos/evaluate.py's two-sample test: real test digits against other real test digits pass;
    noise does not. Samples come from a checkpoint or, as here, a .npy file."""
    import importlib.util
    from pathlib import Path

    from minigan import data, metrics
    spec = importlib.util.spec_from_file_location("evaluate_demo", Path(__file__).parents[1] / "demos" / "evaluate.py")
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    test = data.to_float(data.load_mnist("test", data_dir=mnist_dir)[0])
    noise = np.tanh(np.random.default_rng(0).standard_normal((300, 1, 28, 28))).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    assert np.array_equal(evaluate.generate(tmp_path / "noise.npy", 200), noise[:200])
    model = metrics.load_classifier()[0]
    f_test = metrics.features_and_probs(model, test[600:1200])[0]
    real = evaluate.feature_test(test[:300], f_test, model, permutations=50)
    fake = evaluate.feature_test(noise, f_test, model, permutations=50)
    assert real.p_value > 0.05 and fake.p_value == 1 / 51 and fake.mmd2 > 10 * abs(real.mmd2)
