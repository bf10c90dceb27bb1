"""What the installed package must keep true."""
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_kernels_install_as_minigan_kernels_not_top_level(tmp_path):
    import minigan.kernels
    assert Path(minigan.kernels.__file__).parent.name == "kernels"
    # The installed distribution is the one in site-packages: `python -m pytest` puts the
    # checkout on sys.path, where the editable build's minigan.egg-info would answer instead.
    found = list(importlib.metadata.distributions(name="minigan", path=[sysconfig.get_paths()["purelib"]]))
    assert len(found) == 1, f"expected minigan installed once in {sysconfig.get_paths()['purelib']}"
    dist = found[0]
    top = (dist.read_text("top_level.txt") or "").split()
    assert "kernels" not in top
    assert not any(str(f).startswith("kernels/") for f in dist.files or [])
    # From a folder outside the checkout, `import kernels` must not find this project's code.
    probe = ("import importlib.util, json; s = importlib.util.find_spec('kernels'); "
             "print(json.dumps(None if s is None else s.origin))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    origin = out.stdout.strip()
    assert origin == "null" or str(REPO) not in origin, origin


def test_only_backend_imports_cupy():
    offenders = []
    for path in list((REPO / "minigan").rglob("*.py")) + list((REPO / "kernels").rglob("*.py")):
        if path.name in ("backend.py", "gaussian_cupy.py"):
            continue
        if re.search(r"^\s*(import cupy|from cupy)", path.read_text(), re.M):
            offenders.append(str(path))
    assert not offenders


def test_ci_runs_the_readme_commands():
    """.ci/run must install and test exactly as the README tells a user to."""
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    block = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README.md has no marked test command"
    command = block.group(1).strip()
    assert command in ci


def test_engine_modules_stay_short():
    long = {str(p.relative_to(REPO)): n for p in (REPO / "minigan").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_python_dash_m_pytest_passes_too():
    """`python -m pytest` puts the checkout on sys.path (plain `pytest` does not): the package
    tests, the ones that can tell the two apart, pass both ways."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                        "tests/test_package.py", "-k", "kernels or only_backend"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
