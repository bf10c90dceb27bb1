"""One full DCGAN training step — G forward, D on real and fake, both backward passes, both
Adam steps — on minigan's NumPy backend and, where PyTorch is installed, the same networks,
loss and optimizer in PyTorch, alternating the two in one run.

    python benchmarks/dcgan_step.py [--batch 64 128] [--repeat 15] [--no-torch]
    python benchmarks/dcgan_step.py --cures [--batch 64] [--repeat 9]   # one row per cure
    python benchmarks/dcgan_step.py --backend cupy [--repeat 20]       # on the GPU, beside PyTorch CUDA

On CuPy every timed step ends with a device synchronize, and PyTorch runs on CUDA where it can.
minigan's step is GANTrainer.train_step's: on NumPy under one BLAS thread, its convolutions on
worker threads (minigan.kernels.threads), so it leaves no BLAS thread spinning into PyTorch's
step (an older minigan did, and slowed the PyTorch step after it: docs/results.md, "Speed").

--cures times the plain step and each cure alone, alternating them in one run, and prints
each cure's ms per step and its ratio to the plain step's.

Prints per batch size: median step times and their ratio; minigan's time per layer (forward
and backward, summed over the step's calls); the step's matmul FLOPs, the achieved GFLOP/s
and the floor (each layer's FLOPs at the rate of a matmul of its im2col shape, measured in
this run); and each framework's peak memory for a step (peak RSS growth, in a fresh process).
PyTorch is for this comparison only: `pip install torch==2.13.0` (the CPU build).
"""
import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, matmul_rate, synced  # noqa: E402
from layers import gemm_shape  # noqa: E402

from minigan import models  # noqa: E402
from minigan.trainer import GANTrainer  # noqa: E402

NZ = 100


CURES = {  # arm -> the cure options (GANTrainer's keywords), each cure alone
    "plain": {}, "ema": dict(ema=0.999), "diffaug": dict(diffaug="translation,cutout"),
    "sn (no D BatchNorm)": dict(sn=True), "hinge": dict(loss="hinge"), "ls": dict(loss="ls"),
    "mbstd": dict(mbstd=4), "mbdisc": dict(mbdisc=100), "pack 2": dict(pack=2),
    "lecam": dict(lecam=0.3), "pixel mmd": dict(mmd_weight=1.0, mmd_sigmas=[2.0, 4.0, 8.0, 16.0, 32.0]),
    "feature mmd": dict(mmd_weight=1.0, mmd_space="features"),
    "feature matching": dict(feature_matching=1.0), "d mmd": dict(d_mmd_weight=0.1),
    "unroll 1": dict(unroll=1), "unroll 1, 2nd order": dict(unroll=1, unroll_order=2), "d-steps 2": dict(d_steps=2),
    "r1": dict(gp="r1"), "r1 every 16": dict(gp="r1", gp_every=16), "wgan-gp": dict(loss="wgan", gp="wgan-gp"),
    "dragan": dict(gp="dragan"), "madgan 4": dict(madgan=4), "mrgan": dict(mrgan=0.2), "ebgan": dict(ebgan=True),
}


def minigan_step(batch, seed=0, options=None, backend="numpy"):
    rng = np.random.default_rng(seed)
    G, D, networks = models.build_networks("dcgan", nz=NZ, options=options)
    t = GANTrainer(G, D, nz=NZ, log=lambda *a: None, backend=backend, networks=networks, **(options or {}))
    real = t.xp.asarray(rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32))
    z = t.xp.asarray(rng.standard_normal((batch, NZ)).astype(np.float32))
    return t, synced(lambda: t.train_step(real, z), t.xp)


def torch_step(batch, seed=0, device="cpu"):
    import torch
    from torch import nn
    torch.manual_seed(seed)
    G = nn.Sequential(
        nn.Linear(NZ, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256), nn.LeakyReLU(0.2),
        nn.Unflatten(1, (256, 7, 7)),
        nn.ConvTranspose2d(256, 128, 5, 2, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(128, 64, 5, 2, 2, 1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(64, 1, 5, 1, 2), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(1, 64, 5, 2, 2), nn.LeakyReLU(0.2), nn.Conv2d(64, 128, 5, 2, 2, bias=False),
        nn.BatchNorm2d(128), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(7 * 7 * 128, 1))
    bce = nn.BCEWithLogitsLoss()
    G, D = G.to(device), D.to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
    z = torch.randn(batch, NZ, device=device)
    ones, zeros = torch.ones(batch, 1, device=device), torch.zeros(batch, 1, device=device)

    def step():  # as in PyTorch's DCGAN example
        D.zero_grad()
        bce(D(real), ones).backward()
        fake = G(z)
        bce(D(fake.detach()), zeros).backward()
        opt_D.step()
        G.zero_grad()
        bce(D(fake), ones).backward()
        opt_G.step()
        if device != "cpu":
            torch.cuda.synchronize()
    return step


def per_layer_times(trainer, step, repeat=5):
    """Seconds per step spent in each minigan layer's forward and backward (all calls summed)."""
    spent = defaultdict(float)
    for name, model in (("G", trainer.G), ("D", trainer.D)):
        for i, layer in enumerate(model.layers):
            for kind in ("forward", "backward"):
                method = getattr(layer, kind)

                def timed(*a, _m=method, _k=(f"{name}.{i} {layer!r}"[:60], kind), **kw):
                    t = time.perf_counter()
                    out = _m(*a, **kw)
                    spent[_k] += time.perf_counter() - t
                    return out
                setattr(layer, kind, timed)
    for _ in range(repeat):
        step()
    for model in (trainer.G, trainer.D):
        for layer in model.layers:
            del layer.forward, layer.backward
    return {k: v / repeat for k, v in spent.items()}


def step_flops(trainer, batch, xp=np):
    """(flops, floor seconds) of a step's matmuls: G fwd + 2 in bwd; D 3 fwd + 2 in each of the
    D step's 2 bwd + 1 in the G step's bwd (dx only). The same count is used for PyTorch's
    GFLOP/s, though PyTorch also computes D's parameter gradients in the G step."""
    flops = floor = 0.0
    for model, x_shape, calls in ((trainer.G, (batch, NZ), 3), (trainer.D, (batch, 1, 28, 28), 8)):
        for layer in model.layers:
            y_shape = layer.output_shape(x_shape)
            shape = gemm_shape(layer, x_shape, y_shape)
            if shape:
                f = 2 * float(np.prod(shape)) * calls
                flops += f
                floor += f / (matmul_rate(*shape, repeat=5, xp=xp) * 1e9)
            x_shape = y_shape
    return flops, floor


def _status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def peak_memory(framework, batch):
    """Peak RSS (VmHWM) over 3 steps minus the RSS before them, in MB, in a fresh process.
    (Not ru_maxrss: Linux carries it over exec, so a child would start at this process's peak.)"""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r});"
            f"import dcgan_step as b; s = b.{framework}_step({batch}); s = s[1] if isinstance(s, tuple) else s;"
            "before = b._status_mb('VmRSS'); [s() for _ in range(3)]; print(b._status_mb('VmHWM') - before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(out.stdout.strip()) if out.returncode == 0 else float("nan")


def cure_rows(batch, repeat):
    """ms per step of each cure alone beside the plain step, alternating all arms in one run."""
    steps = {arm: minigan_step(batch, options=o)[1] for arm, o in CURES.items()}
    for step in steps.values():
        step(), step()
    times = {arm: [] for arm in steps}
    for _ in range(repeat):
        for arm, step in steps.items():
            t = time.perf_counter()
            step()
            times[arm].append(time.perf_counter() - t)
    plain = float(np.median(times["plain"]))
    print(f"\nbatch {batch}, medians of {repeat} alternating steps:\n  {'cure':22s} {'ms/step':>8s} {'/ plain':>8s}")
    for arm, t in times.items():
        print(f"  {arm:22s} {np.median(t) * 1e3:8.1f} {np.median(t) / plain:8.2f}")
    print(json.dumps({"batch": batch, "ms": {arm: float(np.median(t)) * 1e3 for arm, t in times.items()}}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--cures", action="store_true", help="one row per cure instead of the PyTorch comparison")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    args = p.parse_args()
    device = "cpu"
    if args.cures:
        print(machine())
        for batch in args.batch:
            cure_rows(batch, args.repeat)
        return
    try:
        import torch
        has_torch = not args.no_torch
        versions = f"; torch {torch.__version__} ({torch.get_num_threads()} threads)"
        if args.backend == "cupy":
            has_torch, device = has_torch and torch.cuda.is_available(), "cuda"
            versions += "" if torch.cuda.is_available() else " without CUDA: no PyTorch rows"
    except ImportError:
        has_torch, versions = False, "; torch not installed"
    print(machine() + versions)
    for batch in args.batch:
        trainer, ours = minigan_step(batch, backend=args.backend)
        theirs = torch_step(batch, device=device) if has_torch else None
        ours(), ours()
        if theirs:
            theirs(), theirs()
        t_ours, t_theirs = [], []
        for _ in range(args.repeat):  # alternate, so both see the same machine
            t = time.perf_counter()
            ours()
            t_ours.append(time.perf_counter() - t)
            if theirs:
                t = time.perf_counter()
                theirs()
                t_theirs.append(time.perf_counter() - t)
        m_ours = float(np.median(t_ours))
        flops, floor = step_flops(trainer, batch, trainer.xp)
        print(f"\nbatch {batch}: minigan {m_ours * 1e3:.1f} ms/step (median of {args.repeat})", end="")
        if theirs:
            m_theirs = float(np.median(t_theirs))
            print(f", PyTorch {m_theirs * 1e3:.1f} ms/step: ratio minigan/PyTorch {m_ours / m_theirs:.2f}", end="")
        print(f"\n  matmul FLOPs per step {flops / 1e9:.1f} G; minigan {flops / m_ours / 1e9:.0f} GFLOP/s"
              + (f", PyTorch {flops / m_theirs / 1e9:.0f} GFLOP/s" if theirs else "")
              + f"; floor at this run's matmul rates {floor * 1e3:.0f} ms (minigan at {floor / m_ours:.0%} of it)")
        if args.backend == "cupy":  # host memory and per-layer host timers say nothing about the GPU
            print(json.dumps({"batch": batch, "backend": "cupy", "minigan_ms": m_ours * 1e3,
                              "torch_cuda_ms": m_theirs * 1e3 if theirs else None}))
            continue
        mem = {"minigan": peak_memory("minigan", batch)}
        if theirs:
            mem["torch"] = peak_memory("torch", batch)
        print("  peak memory growth over a step: " + ", ".join(f"{k} {v:.0f} MB" for k, v in mem.items())
              + (f" (ratio {mem['minigan'] / mem['torch']:.2f})" if theirs and mem["torch"] else ""))
        print(f"  {'minigan layer':60s} {'forward ms':>10s} {'backward ms':>11s}")
        times = per_layer_times(trainer, ours)
        for name in dict.fromkeys(k for k, _ in times):
            print(f"  {name:60s} {times.get((name, 'forward'), 0) * 1e3:10.1f} {times.get((name, 'backward'), 0) * 1e3:11.1f}")
        print(json.dumps({"batch": batch, "minigan_ms": m_ours * 1e3,
                          "torch_ms": m_theirs * 1e3 if theirs else None}))


if __name__ == "__main__":
    main()
