"""The reader's path: docs that cannot rot, summary(), trace(), and the gradcheck command line."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from minigan import models
import pytest

from minigan.gradcheck import check_layer
from minigan.gradcheck_cli import main as gradcheck_main
from minigan.layers import BatchNorm, Dense, LeakyReLU, Reshape, Sequential
from minigan.trace import trace

REPO = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`((?:minigan|kernels|demos)/[\w/]+\.py):([\w.]+)`")


def defined_names(path):
    """Every qualified name a file defines at module or class level: f, C, C.method."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{n.name}" for n in node.body if isinstance(n, ast.FunctionDef))
    return names


def test_every_code_reference_in_the_docs_exists():
    checked = 0
    for doc in (REPO / "docs").glob("*.md"):
        for file, name in REFERENCE.findall(doc.read_text()):
            path = REPO / file
            assert path.is_file(), f"{doc.name}: {file} does not exist"
            assert name in defined_names(path), f"{doc.name}: {file} defines no {name}"
            checked += 1
    assert checked >= 20  # the walkthrough names a file and function at every stop


def test_summary_lists_shapes_and_parameter_counts():
    table = models.dcgan_generator().summary((64, 100))
    lines = table.splitlines()
    assert "(64, 1, 28, 28)" in lines[-2] and "Tanh" in lines[-2]
    assert "(64, 256, 7, 7)" in table and "1,254,400" in table  # Dense(100, 12544), no bias
    total = int(lines[-1].split()[-1].replace(",", ""))
    assert total == models.dcgan_generator().num_params() == sum(
        v.size for layer in models.dcgan_generator().layers for v in layer.params.values())


def test_summary_keeps_whole_names_and_lists_nested_layers():
    inner = Sequential(models.dcgan_generator().layers[4], BatchNorm(128))
    table = Sequential(Dense(3, 256 * 49, bias=False, rng=0), Reshape((256, 7, 7)), inner).summary((2, 3))
    assert "ConvTranspose2D(256, 128, 5, stride=2, padding=2, output_padding=1, bias=False)" in table
    rows = {line.split()[0]: line for line in table.splitlines()[2:-1]}
    assert set(rows) == {"0", "1", "2.0", "2.1"} and "(2, 128, 14, 14)" in rows["2.1"]
    assert table.splitlines()[-1].split()[-1] == f"{3 * 256 * 49 + 256 * 128 * 25 + 256:,d}"


def test_trace_labels_passes_and_shows_only_gradients_computed_in_that_pass():
    model = Sequential(Dense(3, 4, rng=0), BatchNorm(4), LeakyReLU())
    lines = []
    x = np.ones((5, 3), np.float32) * np.arange(5, dtype=np.float32)[:, None]
    with trace(model, names=["M"], passes={"M": ["M first", "M second"]}, print=lines.append):
        y = model.forward(x)
        model.backward(np.ones_like(y))
        model.forward(x)
        model.backward(np.ones_like(y), param_grads=False)
        model.forward(x)
    heads = [line for line in lines if line.startswith("---")]
    assert heads == ["--- M first: M.forward (training mode)", "--- M.backward",
                     "--- M second: M.forward (training mode)",
                     "--- M.backward with param_grads=False: dx only, no parameter gradients",
                     "--- M pass 3: M.forward (training mode)"]
    body = [line.split()[0] + " " + line.split()[1] for line in lines if not line.startswith("---")]
    assert body[:6] == ["forward M.0", "forward M.1", "forward M.2", "backward M.2", "backward M.1", "backward M.0"]
    first_back, second_back = lines[5:8], lines[12:15]
    assert "|dW|" in first_back[-1] and "|dgamma|" in first_back[-2]
    assert not any("|dW|" in line or "|dgamma|" in line for line in second_back), second_back
    assert "forward" not in vars(model.layers[0])  # unwrapped


def test_demo_trace_labels_the_three_d_passes(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "demos" / "mnist_gan.py"), "--dry-run", "--trace",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    heads = [line for line in r.stdout.splitlines() if line.startswith("--- ")]
    assert [h.split(":")[0] for h in heads if "forward" in h] == \
        ["--- G forward", "--- D on real", "--- D on fake", "--- D in G's step"]
    after = r.stdout.split("--- D in G's step")[1].split("--- G.backward")[0]
    assert "param_grads=False" in after and "|dW|" not in after


def gradcheck(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "minigan.gradcheck", *args], capture_output=True, text=True,
                          cwd=cwd)


def gradcheck_here(capsys, *args):
    """The command line in this process: (exit code, stdout, stderr)."""
    try:
        code = gradcheck_main(list(args))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_gradcheck_command_line():
    ok = gradcheck("Conv2D(2, 3, 3, stride=2, padding=1)", "--input", "2", "2", "5", "5")
    assert ok.returncode == 0 and "dW" in ok.stdout and "all gradients within 1e-06" in ok.stdout, ok.stderr
    assert "(full, 54 entries)" in ok.stdout and "reference mode" in ok.stdout
    big = gradcheck("Dense(40, 30)", "--input", "2", "40", "--double")
    assert big.returncode == 0 and "(6 random directions, 1,200 entries)" in big.stdout, big.stdout + big.stderr
    assert "∂Q/∂W" in big.stdout and "∂Q/∂dy" in big.stdout and "all gradients within 1e-06" in big.stdout


@pytest.mark.parametrize("name", ["Conv2D", "ConvTranspose2D", "Tanh", "BatchNorm", "Dropout", "Flatten",
                                  "SpectralNorm", "MinibatchStdDev", "MinibatchDiscrimination", "Pack", "DiffAugment"])
def test_gradcheck_bare_names_run_a_default_both_derivatives(capsys, name):
    for double in ([], ["--double"]):
        code, out, err = gradcheck_here(capsys, name, *double)
        assert code == 0 and "all gradients within" in out, out + err


def test_gradcheck_double_names_each_derivative_once(capsys):
    code, out, err = gradcheck_here(capsys, "BatchNorm", "--double")
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert code == 0 and rows == ["∂Q/∂dy", "∂Q/∂x", "∂Q/∂gamma", "∂Q/∂beta"], out + err


@pytest.mark.parametrize("args, message", [
    (["BatchNorm(8, 0.8)", "--input", "2", "8"], "gradcheck: BatchNorm(8, 0.8): BatchNorm.__init__() takes 2 "
                                                  "positional arguments but 3 were given (hyperparameters"),
    (["Conv2D(3, 4, 3, strid=2)", "--input", "2", "3", "8", "8"], "unexpected keyword argument 'strid'"),
    (["__import__('os')", "--input", "2"], "gradcheck: __import__ is not a minigan layer"),
    (["Conv2D(3, 4, 3)"], "gradcheck: --input is needed for Conv2D(3, 4, 3)"),
    (["Conv2D(", "--input", "2"], "gradcheck: expected a layer such as 'Conv2D'"),
    (["nowhere.py:Foo", "--input", "2"], "gradcheck: no such file: nowhere.py"),
    (["no_such_module:Foo", "--input", "2"], "gradcheck: cannot import no_such_module"),
    (["Conv2D", "--input", "2", "3", "5", "5"], "gradcheck: --input 2 3 5 5: Conv2D(2, 3, 3, stride=2, padding=1, "
                                                "bias=True): expected 2 input channels"),
    (["conv2d"], "gradcheck: conv2d is not a minigan layer in minigan.layers (did you mean Conv2D?)"),
    (["SpectralNorm(Dens(4, 3))", "--input", "2", "4"], "Dens is not a minigan layer in minigan.layers "
                                                        "(did you mean Dense?)"),
    (["Conv2D", "--inptu", "2", "2", "5", "5"], "unrecognized arguments: --inptu 2 2 5 5 (did you mean --input?)"),
    (["Conv2D", "--dobule"], "unrecognized arguments: --dobule (did you mean --double?)"),
])
def test_gradcheck_mistakes_are_one_line(capsys, args, message):
    code, out, err = gradcheck_here(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and message in lines[-1] and "Traceback" not in err, err
    assert len(lines) == 1, err


def test_gradcheck_checks_a_wrapped_layer_written_as_nested_calls(capsys):
    code, out, err = gradcheck_here(capsys, "SpectralNorm(Dense(4, 3))", "--input", "2", "4")
    assert code == 0 and out.startswith("SpectralNorm(Dense(4, 3, bias=True)) on input (2, 4)"), out + err
    code, out, err = gradcheck_here(capsys, "SpectralNorm(Dense(4, 3), n_power_iterations=2)", "--input", "2", "4",
                                    "--double", "--eval")
    assert code == 0 and "∂Q/∂W" in out, out + err


def test_gradcheck_loads_your_own_layer_by_module_or_file(tmp_path):
    template = ("from minigan.layers import Elementwise\n"
                "class Cube(Elementwise):\n"
                "    def forward(self, x, training=True):\n"
                "        self.check_input(x)\n        self.cache = x\n        return x ** 3\n"
                "    def backward(self, dy, param_grads=True):\n"
                "        self.check_grad(dy)\n        return 3 * self.cache ** POWER * dy\n")
    for power, right in ((2, True), (1, False)):
        (tmp_path / "mine.py").write_text(template.replace("POWER", str(power)))
        for spec in ("mine.py:Cube", "mine:Cube()"):
            r = gradcheck(spec, "--input", "3", "4", cwd=tmp_path)
            assert r.returncode == (0 if right else 1), r.stdout + r.stderr
            assert ("FAIL: dx" in r.stdout) != right, r.stdout


def test_a_failing_check_shows_the_worst_entries_and_the_scale(capsys, tmp_path, monkeypatch):
    """A 2x2 average pool whose backward forgot its 1/k²: the numbers say where and by how much."""
    (tmp_path / "pool.py").write_text(
        "from minigan.layers import Layer\n"
        "class Pool(Layer):\n"
        "    def output_shape(self, s):\n        return (s[0], s[1], s[2] // 2, s[3] // 2)\n"
        "    def forward(self, x, training=True):\n"
        "        N, C, H, W = x.shape\n        self.check_input(x)\n"
        "        return x.reshape(N, C, H // 2, 2, W // 2, 2).mean(axis=(3, 5))\n"
        "    def backward(self, dy, param_grads=True):\n"
        "        self.check_grad(dy)\n"
        "        return dy.repeat(2, axis=2).repeat(2, axis=3)\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = gradcheck_here(capsys, "pool.py:Pool", "--input", "1", "1", "2", "4")
    assert code == 1 and "dx         relative error 7.50e-01  FAIL" in out, out + err
    worst = re.findall(r"at \((0, 0, [01], [0-3])\): analytic (\S+), numeric (\S+)", out)
    assert len(worst) == 3 and all(abs(float(a) / float(n) - 4) < 1e-6 for _, a, n in worst), out
    assert "scale: |analytic| / |numeric| = ×4\n" in out, out
    assert out.splitlines()[-1] == "FAIL: dx"


def test_a_layer_the_contract_refuses_is_one_line(capsys, tmp_path, monkeypatch):
    (tmp_path / "old.py").write_text(
        "from minigan.layers import Elementwise\n"
        "class Old(Elementwise):\n"
        "    def forward(self, x):\n        return x\n"
        "    def backward(self, dy, param_grads=True):\n        return dy\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = gradcheck_here(capsys, "old.py:Old", "--input", "2", "3")
    assert code == 2 and err.strip() == ("gradcheck: cannot load old.py: TypeError at old.py line 2: Old.forward "
                                         "must take `training`: forward(self, x, training=True)"), err


def test_check_layer_leaves_the_callers_layer_as_it_was():
    layer = Dense(3, 2, rng=0)
    W = layer.params["W"]
    check_layer(layer, np.ones((2, 3)))
    assert layer.params["W"] is W and W.dtype == np.float32 and layer.cache is None
