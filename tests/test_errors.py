"""Bad input: a ValueError/TypeError naming the layer, what it expected and what it got,
raised before any state changes."""
import numpy as np
import pytest

from minigan.layers import (BatchNorm, Conv2D, ConvTranspose2D, Dense, Flatten, LeakyReLU, Reshape,
                            Sequential, Tanh)


@pytest.mark.parametrize("make, match", [
    (lambda: Dense(0, 3), r"Dense: expected in_features to be a positive int, got 0"),
    (lambda: Conv2D(1, -2, 3), r"Conv2D: expected out_ch to be a positive int, got -2"),
    (lambda: Conv2D(1, 2, 3, stride=0), r"Conv2D: expected stride to be a positive int, got 0"),
    (lambda: Conv2D(1, 2, 3, padding=-1), r"Conv2D: expected padding to be an int >= 0, got -1"),
    (lambda: ConvTranspose2D(1, 2, 3, stride=2, output_padding=2),
     r"ConvTranspose2D: expected 0 <= output_padding < stride = 2, got output_padding=2"),
    (lambda: BatchNorm(0), r"BatchNorm: expected num_features to be a positive int, got 0"),
    (lambda: BatchNorm(3, eps=0), r"BatchNorm: expected eps > 0, got 0"),
    (lambda: Reshape((2, 0)), r"Reshape: expected positive sizes"),
    (lambda: LeakyReLU(1.5), r"LeakyReLU: expected 0 <= negative_slope <= 1, got 1.5"),
])
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("layer, shape, match", [
    (Dense(4, 2), (3, 5), r"Dense\(4, 2.*expected input of shape \(N, 4\), got \(3, 5\)"),
    (Dense(4, 2), (3, 4, 1), r"expected input of shape \(N, 4\), got \(3, 4, 1\)"),
    (Conv2D(3, 2, 3), (2, 3, 5), r"Conv2D\(3, 2, 3.*expected input of shape \(N, 3, H, W\), got \(2, 3, 5\)"),
    (Conv2D(3, 2, 3), (2, 4, 5, 5), r"expected 3 input channels .* got shape \(2, 4, 5, 5\)"),
    (Conv2D(1, 2, 5, padding=1), (1, 1, 2, 9), r"kernel 5 is larger than the padded input 4x11"),
    (ConvTranspose2D(2, 1, 3, padding=2), (1, 2, 1, 1), r"gives an empty output"),
    (BatchNorm(3), (4, 2), r"BatchNorm\(3.*expected 3 features on axis 1, got shape \(4, 2\)"),
    (BatchNorm(3), (4, 3, 2), r"expected input of shape \(N, 3\) or \(N, 3, H, W\), got \(4, 3, 2\)"),
    (Reshape((2, 3)), (4, 5), r"Reshape\(\(2, 3\)\): expected \(N, ...\) with 6 values per sample, got shape \(4, 5\)"),
])
def test_bad_input_shape(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer.forward(np.ones(shape, np.float32))
    assert layer.cache is None


def test_wrong_dtype_and_type():
    with pytest.raises(TypeError, match=r"Dense\(2, 2.*expected input dtype float32 .* got float64"):
        Dense(2, 2).forward(np.ones((1, 2)))
    with pytest.raises(TypeError, match=r"Tanh\(\): expected a floating-point input, got dtype int64"):
        Tanh().forward(np.ones((1, 2), np.int64))
    with pytest.raises(TypeError, match=r"expected an array, got list"):
        Tanh().forward([[1.0]])


def test_gradient_of_wrong_shape_changes_nothing():
    layer = Conv2D(1, 2, 3)
    y = layer.forward(np.ones((2, 1, 5, 5), np.float32))
    before = {k: v.copy() for k, v in layer.grads.items()}
    with pytest.raises(ValueError, match=r"Conv2D\(1, 2, 3.*expected a gradient of shape \(2, 2, 3, 3\).*got \(2, 2, 3\)"):
        layer.backward(np.ones(y.shape[:-1], np.float32))
    assert all(np.array_equal(before[k], layer.grads[k]) for k in before)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match=r"LeakyReLU.*backward called before forward"):
        LeakyReLU().backward(np.ones((2, 2), np.float32))


def test_sequential_rejects_before_any_layer_changes():
    bn = BatchNorm(4)
    model = Sequential(Dense(3, 4), bn, LeakyReLU(), Reshape((2, 3)))  # 4 values cannot become (2, 3)
    with pytest.raises(ValueError, match=r"Reshape"):
        model.forward(np.ones((5, 3), np.float32))
    assert all(layer.cache is None for layer in model.layers)
    np.testing.assert_array_equal(bn.buffers["running_mean"], 0)


def test_hyperparameters_after_sizes_are_keyword_only():
    with pytest.raises(TypeError, match="takes 4 positional arguments but 5 were given"):
        Conv2D(1, 2, 3, 2)
    with pytest.raises(TypeError, match="takes 3 positional arguments but 4 were given"):
        Dense(2, 3, False)
    with pytest.raises(TypeError, match="Sequential: expected Layer instances, got str at position 1"):
        Sequential(Dense(2, 2), "tanh")


def test_flatten_and_load_state_errors():
    model = Sequential(Dense(2, 3), BatchNorm(3), Flatten())
    state = model.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['1.running_var'\]"):
        model.load_state_dict({k: v for k, v in state.items() if k != "1.running_var"})
    bad = dict(state, **{"0.W": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"0.W expected shape \(2, 3\), got \(3, 3\)"):
        model.load_state_dict(bad)
    assert model.state_dict()["0.W"] is state["0.W"]
