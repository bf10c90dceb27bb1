"""The reader's path: docs that cannot rot, summary(), trace(), and the gradcheck command line."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from minigan import models
from minigan.layers import BatchNorm, Dense, LeakyReLU, Sequential
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


def test_trace_prints_every_layer_in_order_and_unwraps():
    model = Sequential(Dense(3, 4, rng=0), BatchNorm(4), LeakyReLU())
    lines = []
    with trace(model, names=["M"], print=lines.append):
        y = model.forward(np.ones((5, 3), np.float32) * np.arange(5, dtype=np.float32)[:, None])
        model.backward(np.ones_like(y))
    kinds = [line.split()[0] + " " + line.split()[1] for line in lines]
    assert kinds == ["forward M.0", "forward M.1", "forward M.2", "backward M.2", "backward M.1", "backward M.0"]
    assert "|dW|" in lines[-1] and "|dgamma|" in lines[-2]
    assert "forward" not in vars(model.layers[0])  # the layer's own methods are back


def test_gradcheck_command_line():
    ok = subprocess.run([sys.executable, "-m", "minigan.gradcheck", "Conv2D(2, 3, 3, stride=2, padding=1)",
                         "--input", "2", "2", "5", "5"], capture_output=True, text=True)
    assert ok.returncode == 0 and "dW" in ok.stdout and "all gradients within 1e-06" in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "minigan.gradcheck", "__import__('os')", "--input", "2"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "expected a layer call" in bad.stderr
