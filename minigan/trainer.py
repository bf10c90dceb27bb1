"""GANTrainer: alternating D and G steps on one backend, with checkpoints that never lose work.

Randomness: one host generator (seed=) draws each epoch's shuffle and all its z at the
epoch's start; they move to the backend once, so nothing crosses host <-> device inside a
step. Saving that generator's state at the epoch's start, plus the step reached, makes a
resumed run bit-identical to an uninterrupted one, even from mid-epoch (Ctrl-C).
"""
import csv
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import backend as backend_mod
from . import checkpoint, viz
from .layers.activations import sigmoid
from .losses import bce_with_logits, mmd
from .optim import Adam

STATS = ("loss_d", "loss_g", "d_x", "d_g_z", "mmd")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the message names the step and the last good checkpoint."""


class GANTrainer:
    """Trains generator G (z -> sample) against discriminator D (sample -> logit).

    Loss_D = BCE(D(x), 1) + BCE(D(G(z)), 0);  Loss_G = BCE(D(G(z)), 1) (the non-saturating
    loss) + mmd_weight · MMD²(G(z), x), with Adam(lr, betas=(beta1, 0.999)) for each.
    """

    def __init__(self, G, D, *, nz, backend="numpy", lr=2e-4, beta1=0.5, mmd_weight=0.0,
                 mmd_sigmas=None, seed=0, out_dir=None, keep=3, log_every=10, n_samples=64, log=print,
                 evaluate=None, eval_every=0):
        if mmd_weight < 0:
            raise ValueError(f"GANTrainer: expected mmd_weight >= 0, got {mmd_weight}")
        self.xp = backend_mod.get(backend)
        self.G, self.D = G.to(self.xp, np.float32), D.to(self.xp, np.float32)
        self.opt_G = Adam(G, lr=lr, betas=(beta1, 0.999))
        self.opt_D = Adam(D, lr=lr, betas=(beta1, 0.999))
        self.config = dict(nz=nz, backend=backend, lr=lr, beta1=beta1, mmd_weight=mmd_weight,
                           mmd_sigmas=None if mmd_sigmas is None else [float(s) for s in mmd_sigmas],
                           seed=seed)
        self.rng = np.random.default_rng(seed)
        self.fixed_z = np.random.default_rng([seed, 1]).standard_normal((n_samples, nz)).astype(np.float32)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.keep, self.log_every, self.log = keep, log_every, log
        self.evaluate, self.eval_every = evaluate, eval_every  # evaluate(trainer) -> {name: number}
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.epoch_rng_state = None  # the generator's state when the current epoch drew its shuffle and z
        self.history = []  # one row per log interval: step, epoch and the means of STATS
        self.last_checkpoint = None
        self._stop = False

    # ---- one step ------------------------------------------------------------------------
    def train_step(self, real, z):
        """One D step, then one G step, on backend arrays. Returns the stats vector (STATS order)."""
        xp, G, D = self.xp, self.G, self.D
        fake = G.forward(z)
        # D step. Real and fake batches go through D separately, so BatchNorm normalises each
        # on its own (as in PyTorch's DCGAN); the two losses' parameter gradients add.
        logits_real = D.forward(real)
        loss_real, dlogits = bce_with_logits(logits_real, 1.0)
        D.backward(dlogits)
        grads_real = {name: g.copy() for name, g in D.grads.items()}
        logits_fake = D.forward(fake)
        loss_fake, dlogits = bce_with_logits(logits_fake, 0.0)
        D.backward(dlogits)
        for name, layer, k in D.named_parameters():
            layer.grads[k] += grads_real[name]
        self.opt_D.step()
        # G step: label the fakes "real" and backpropagate through the updated D into G.
        # Only dfake is needed from D here, not D's parameter gradients.
        loss_g, dlogits = bce_with_logits(D.forward(fake), 1.0)
        dfake = D.backward(dlogits, param_grads=False)
        mmd_value = xp.zeros((), np.float32)
        if self.config["mmd_weight"]:
            mmd_value, dmmd = mmd(fake, real, self.config["mmd_sigmas"], check_finite=False)
            dfake += np.float32(self.config["mmd_weight"]) * dmmd
        G.backward(dfake)
        self.opt_G.step()
        return xp.stack([loss_real + loss_fake, loss_g, sigmoid(logits_real).mean(),
                         sigmoid(logits_fake).mean(), mmd_value.astype(np.float32)])

    # ---- the loop ------------------------------------------------------------------------
    def fit(self, data, *, epochs, batch_size):
        """Train on host float32 samples `data` (N, ...) until `epochs` epochs are done.
        Returns "done" or "interrupted" (Ctrl-C: a checkpoint was saved first)."""
        n = len(data)
        if not 1 <= batch_size <= n:
            raise ValueError(f"GANTrainer.fit: expected 1 <= batch_size <= {n} (the number of samples), "
                             f"got {batch_size}")
        saved = self.config.get("batch_size")
        if self.step_in_epoch and saved != batch_size:
            raise ValueError(f"GANTrainer.fit: this run stopped mid-epoch with batch_size={saved}; "
                             f"resume it with that batch size, got {batch_size}")
        self.config["batch_size"] = batch_size
        if self.config["mmd_weight"] and self.config["mmd_sigmas"] is None:
            from .kernels import default_sigmas
            pick = np.random.default_rng([self.config["seed"], 2]).permutation(n)[:512]
            sample = data[pick]
            self.config["mmd_sigmas"] = list(default_sigmas(sample.reshape(len(sample), -1).astype(np.float64)))
        xp = self.xp
        data_dev = backend_mod.to_backend(np.ascontiguousarray(data, np.float32), xp)  # moved once
        steps = n // batch_size
        self._stop = False
        previous = signal.signal(signal.SIGINT, self._request_stop) if _main_thread() else None
        try:
            while self.epoch < epochs:
                if self.epoch_rng_state is None:
                    self.epoch_rng_state = self.rng.bit_generator.state
                self.rng.bit_generator.state = self.epoch_rng_state
                order = self.rng.permutation(n)[:steps * batch_size].reshape(steps, batch_size)
                zs = self.rng.standard_normal((steps, batch_size, self.config["nz"])).astype(np.float32)
                order, zs = backend_mod.to_backend(order, xp), backend_mod.to_backend(zs, xp)
                stats = xp.zeros((steps, len(STATS)), np.float32)
                bar = _Progress(self.epoch + 1, epochs, steps)
                logged = self.step_in_epoch
                while self.step_in_epoch < steps:
                    if self._stop:
                        self._check_and_log(stats, logged, self.step_in_epoch)
                        if self.out_dir is not None:
                            self.save_checkpoint()
                            self.log(f"\ninterrupted: saved {self.last_checkpoint}; resume with --resume")
                        return "interrupted"
                    i = self.step_in_epoch
                    stats[i] = self.train_step(data_dev[order[i]], zs[i])
                    self.step_in_epoch += 1
                    self.step += 1
                    if self.step_in_epoch % self.log_every == 0 or self.step_in_epoch == steps:
                        bar.show(self.step_in_epoch, self._check_and_log(stats, logged, self.step_in_epoch))
                        logged = self.step_in_epoch
                bar.close()
                self.epoch += 1
                self.step_in_epoch = 0
                self.epoch_rng_state = self.rng.bit_generator.state  # the next epoch's start
                self.end_of_epoch()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return "done"

    def _request_stop(self, signum, frame):
        self._stop = True

    def _check_and_log(self, stats, start, stop):
        """Read the stats of steps [start, stop) to the host; stop on a NaN/Inf; log their means."""
        if stop <= start:
            return self.history[-1] if self.history else None
        rows = backend_mod.to_host(stats[start:stop])
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            step = self.step - (stop - start) + i + 1
            values = ", ".join(f"{k}={v:.4g}" for k, v in zip(STATS, rows[i]))
            kept = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else \
                "no checkpoint had been written yet"
            raise TrainingDiverged(f"non-finite loss at step {step} (epoch {self.epoch + 1}, batch {start + i + 1}): "
                                   f"{values}. Training stopped; {kept}.")
        row = dict(step=self.step, epoch=self.epoch + (stop / len(stats)),
                   **{k: float(v) for k, v in zip(STATS, rows.mean(axis=0))})
        self.history.append(row)
        if self.out_dir is not None:
            self._write_log([row], append=True)
        return row

    # ---- what an epoch leaves behind -----------------------------------------------------
    def sample(self, z, *, training=False):
        """G(z) on the host. training=True uses batch statistics and leaves the running ones as they were."""
        saved = [dict(layer.buffers) for layer in self.G.layers]
        out = self.G.forward(backend_mod.to_backend(z, self.xp), training)
        for layer, buffers in zip(self.G.layers, saved):
            layer.buffers.update(buffers)
        return backend_mod.to_host(out)

    def end_of_epoch(self):
        if self.out_dir is None:
            return
        tag = f"epoch{self.epoch:03d}"
        viz.save_samples(self.out_dir / f"samples_{tag}.png",
                       {f"epoch {self.epoch}, eval-mode BatchNorm": self.sample(self.fixed_z),
                        "train-mode BatchNorm": self.sample(self.fixed_z, training=True)})
        if self.history:
            viz.plot_history(self.out_dir / "losses.png", self.history)
        if self.evaluate and self.eval_every and self.epoch % self.eval_every == 0:
            scores = {"epoch": self.epoch, "step": self.step, **self.evaluate(self)}
            self.log("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(scores) + "\n")
        self.save_checkpoint()

    def _write_log(self, rows, append):
        path = self.out_dir / "log.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not append or not path.exists()
        with open(path, "a" if append else "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "epoch", *STATS])
            if new:
                w.writeheader()
            w.writerows(rows)

    # ---- checkpoints ---------------------------------------------------------------------
    def state(self):
        arrays = {**checkpoint.with_prefix(self.G.state_dict(), "G"),
                  **checkpoint.with_prefix(self.D.state_dict(), "D"),
                  **checkpoint.with_prefix(self.opt_G.state_dict(), "optim_G"),
                  **checkpoint.with_prefix(self.opt_D.state_dict(), "optim_D"),
                  "history": np.array([[r["step"], r["epoch"], *(r[k] for k in STATS)] for r in self.history],
                                      np.float64).reshape(-1, 2 + len(STATS))}
        meta = dict(epoch=self.epoch, step_in_epoch=self.step_in_epoch, step=self.step,
                    rng_state=self.epoch_rng_state or self.rng.bit_generator.state, config=self.config)
        return arrays, meta

    def save_checkpoint(self):
        folder = self.out_dir / "checkpoints"
        path = folder / f"ckpt-e{self.epoch:03d}-s{self.step:07d}.npz"
        self.last_checkpoint = checkpoint.save(path, *self.state())
        for old in sorted(folder.glob("ckpt-*.npz"))[:-self.keep]:
            old.unlink()
        return path

    def restore(self, path):
        """Continue from a checkpoint: weights, BatchNorm statistics, Adam moments, RNG, step, log."""
        arrays, meta = checkpoint.load(path)
        for key in ("nz", "mmd_weight"):
            if meta["config"][key] != self.config[key]:
                raise ValueError(f"{path}: saved with {key}={meta['config'][key]}, this run has "
                                 f"{key}={self.config[key]}")
        self.G.load_state_dict(checkpoint.subset(arrays, "G"))
        self.D.load_state_dict(checkpoint.subset(arrays, "D"))
        self.opt_G.load_state_dict(checkpoint.subset(arrays, "optim_G"))
        self.opt_D.load_state_dict(checkpoint.subset(arrays, "optim_D"))
        self.config["mmd_sigmas"] = meta["config"]["mmd_sigmas"]
        self.config["batch_size"] = meta["config"].get("batch_size")
        self.epoch, self.step_in_epoch, self.step = meta["epoch"], meta["step_in_epoch"], meta["step"]
        self.epoch_rng_state = meta["rng_state"]
        self.rng.bit_generator.state = meta["rng_state"]
        self.history = [dict(step=int(r[0]), epoch=float(r[1]), **dict(zip(STATS, map(float, r[2:]))))
                        for r in arrays["history"]]
        self.last_checkpoint = Path(path)
        if self.out_dir is not None:
            self._write_log(self.history, append=False)


def latest_checkpoint(out_dir):
    found = sorted((Path(out_dir) / "checkpoints").glob("ckpt-*.npz"))
    return found[-1] if found else None


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


class _Progress:
    """One line per epoch, redrawn in place on a terminal: step, Loss_D, Loss_G, D(x), D(G(z))."""

    def __init__(self, epoch, epochs, steps):
        self.prefix, self.steps, self.start = f"epoch {epoch}/{epochs}", steps, time.perf_counter()
        self.tty, self.line = sys.stderr.isatty(), ""

    def show(self, i, row):
        done = int(20 * i / self.steps)
        rate = i / max(time.perf_counter() - self.start, 1e-9)
        self.line = (f"{self.prefix} [{'#' * done}{'.' * (20 - done)}] {i}/{self.steps} "
                     f"Loss_D {row['loss_d']:.3f} Loss_G {row['loss_g']:.3f} D(x) {row['d_x']:.3f} "
                     f"D(G(z)) {row['d_g_z']:.3f}" + (f" MMD² {row['mmd']:.4f}" if row["mmd"] else "")
                     + f"  {rate:.1f} steps/s")
        if self.tty:
            print("\r" + self.line, end="", file=sys.stderr, flush=True)

    def close(self):
        print(("\r" if self.tty else "") + self.line, file=sys.stderr, flush=True)
