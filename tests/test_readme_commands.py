"""The README's commands, run as a user types them: from the root of a fresh copy of the
repository, in a fresh process, with the virtual environment the README's first command builds.

The first command ends by training for eight minutes; here its install part runs as written
and the demo runs as written plus --dry-run. The test command is what .ci/run runs
(tests/test_package.py checks that the two agree)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def marked_block(marker):
    block = re.search(rf"<!-- {marker} -->\s*```(?:bash)?\n(.*?)\n```", README, re.S)
    assert block, f"README.md has no block marked <!-- {marker} -->"
    return block.group(1).strip()


def bash(command, cwd, **kw):
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory):
    """The repository's files (tracked and not ignored) in a new folder, installed by the
    README's first command up to the demo."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True)
    if listed.returncode:
        pytest.skip(f"not a git checkout, cannot tell which files are the repository's: {listed.stderr.strip()}")
    root = tmp_path_factory.mktemp("clone")
    for name in filter(None, listed.stdout.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    install, demo = marked_block("demo-command").split(" && python demos/mnist_gan.py")
    r = bash(install, root, timeout=1200)
    assert r.returncode == 0, f"the README's install failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return root


def test_readme_demo_command_as_typed(fresh_copy):
    command = marked_block("demo-command")
    assert command.endswith("python demos/mnist_gan.py"), command
    r = bash(". .venv/bin/activate && python demos/mnist_gan.py --dry-run", fresh_copy, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = fresh_copy / "runs" / "dry_run"  # a dry run never writes into the real run's runs/mnist_gan
    assert (out / "samples_epoch001.png").is_file() and list((out / "checkpoints").glob("ckpt-*.npz"))
    assert not (fresh_copy / "runs" / "mnist_gan").exists()


def test_readme_debugger_line_as_typed(fresh_copy):
    """The pdb line stops on Conv2D.backward's first line and prints what the README shows."""
    command = marked_block("debug-command")
    session = marked_block("debug-session").splitlines()
    typed = [line[len("(Pdb) "):] for line in session if line.startswith("(Pdb) ")]
    expected = [line for line in session if not line.startswith("(Pdb) ")]
    r = bash(". .venv/bin/activate && " + command, fresh_copy, input="\n".join(typed + ["q"]) + "\n", timeout=600)
    shown = r.stdout
    for line in expected:  # in order, "…" standing for any text
        pattern = ".*".join(re.escape(part) for part in line.split("…"))
        found = re.search(pattern, shown)
        assert found, f"the README promises {line!r}; pdb printed:\n{r.stdout[-3000:]}\n{r.stderr[-1000:]}"
        shown = shown[found.end():]


def test_readme_breakpoint_is_the_first_line_of_conv2d_backward():
    import ast
    line = int(re.search(r"minigan/layers/conv.py:(\d+)", marked_block("debug-command")).group(1))
    tree = ast.parse((REPO / "minigan" / "layers" / "conv.py").read_text())
    conv2d = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Conv2D")
    backward = next(n for n in conv2d.body if isinstance(n, ast.FunctionDef) and n.name == "backward")
    first = backward.body[1] if isinstance(backward.body[0], ast.Expr) else backward.body[0]  # past the docstring
    assert line == first.lineno, f"README breaks at conv.py:{line}; Conv2D.backward starts at {first.lineno}"
