"""Faults injected from outside the engine (no test hooks in production code): a checkpoint
writer that pauses with its data written but not yet moved into place, so that a test can kill
it there. Used by starting a demo through this module:

    python tests/faults.py pause-save N MARKER demos/mnist_gan.py ARGS...
"""
import contextlib
import runpy
import sys
import time
from pathlib import Path

from minigan import checkpoint


def pause_save(n, marker, seconds=120):
    """The n-th checkpoint.save of this process writes its data, touches `marker` and waits
    `seconds` before moving the file into place (checkpoint.atomic_file wrapped)."""
    original, count = checkpoint.atomic_file, [0]

    @contextlib.contextmanager
    def paused(path):
        with original(path) as tmp:
            yield tmp
            count[0] += Path(path).suffix == ".npz"  # checkpoints only (not run.json)
            if count[0] == n and Path(path).suffix == ".npz":
                Path(marker).touch()
                time.sleep(seconds)
    checkpoint.atomic_file = paused


if __name__ == "__main__":
    _, kind, n, marker, script, *args = sys.argv
    assert kind == "pause-save", kind
    pause_save(int(n), marker)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
