"""GANTrainer: alternating D and G steps on one backend, with the cures for mode collapse
plugged in at three tap points, and checkpoints that never lose work.

Randomness: one host generator (seed=) draws each epoch's shuffle and all its z at the
epoch's start; they move to the backend once, so nothing crosses host <-> device inside a
step. Saving that generator's state at the epoch's start, plus the step reached and the
generators of random layers (DiffAugment), makes a resumed run bit-identical to an
uninterrupted one, even from mid-epoch (Ctrl-C, SIGTERM).
"""
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import backend as backend_mod
from . import checkpoint, viz
from .cures import Terms
from .layers import Sequential
from .layers.activations import sigmoid
from .optim import EMA, Adam

STATS = ("loss_d", "loss_g", "d_x", "d_g_z", "mmd", "r_t")


class BadOption(ValueError):
    """An option the trainer cannot use (raised before it makes any state)."""


class TrainingDiverged(RuntimeError):
    """A loss or the model's state became NaN or Inf; the message names the step and the last
    good checkpoint."""


class GANTrainer:
    """Trains generator G (z -> sample) against discriminator D (sample -> logit).

    D is split at `feature_layer` (an index into D.layers; default: the layer before the last,
    i.e. D's last hidden layer) into a feature part and a head that share D's layers. Every
    cure is one of: a layer in D (DiffAugment, Pack, SpectralNorm, the minibatch layers), a
    term that returns its value and gradient at a tap (D's output, D's features, G's output:
    see minigan/cures.py), or a hook after an optimizer step (EMA of G, LeCam's anchors).
    The terms' gradients are summed at each tap and each pass runs one backward.

    Options (all recorded in checkpoints): loss in minigan.losses.ADVERSARIAL; lr (both) or
    lr_d / lr_g (TTUR); beta1; d_steps (D updates per G update); unroll (k extra D steps
    before G's gradient, first-order; D restored after); ema (decay or None); mmd_weight with
    mmd_space "pixels" | "features"; d_mmd_weight; feature_matching; lecam; `cures`, a dict
    describing D's structure (which layers it has), compared on resume.
    """

    def __init__(self, G, D, *, nz, backend="numpy", lr=2e-4, lr_d=None, lr_g=None, beta1=0.5,
                 loss="ns", d_steps=1, unroll=0, ema=None, mmd_weight=0.0, mmd_space="pixels",
                 mmd_sigmas=None, d_mmd_weight=0.0, feature_matching=0.0, lecam=0.0, feature_layer=None,
                 cures=None, seed=0, out_dir=None, keep=3, log_every=10, n_samples=64, log=print,
                 evaluate=None, eval_every=0):
        feature_layer = len(D.layers) - 2 if feature_layer is None else feature_layer
        self.config = dict(nz=nz, backend=backend, lr_d=lr if lr_d is None else lr_d,
                           lr_g=lr if lr_g is None else lr_g, beta1=beta1, loss=loss, d_steps=d_steps,
                           unroll=unroll, ema=ema, mmd_weight=mmd_weight, mmd_space=mmd_space,
                           mmd_sigmas=None if mmd_sigmas is None else [float(s) for s in mmd_sigmas],
                           d_mmd_weight=d_mmd_weight, feature_matching=feature_matching, lecam=lecam,
                           feature_layer=feature_layer, cures=dict(cures or {}), seed=seed)
        self.terms = Terms(self.config, D)  # checks every option before any state is made
        self.xp = backend_mod.get(backend)
        self.G, self.D = G.to(self.xp, np.float32), D.to(self.xp, np.float32)
        self.D_features = Sequential(*D.layers[:feature_layer + 1])
        self.D_head = Sequential(*D.layers[feature_layer + 1:])
        self.opt_G = Adam(G, lr=self.config["lr_g"], betas=(beta1, 0.999))
        self.opt_D = Adam(D, lr=self.config["lr_d"], betas=(beta1, 0.999))
        self.ema = None if ema is None else EMA(G, decay=ema)
        self.rng = np.random.default_rng(seed)
        self.fixed_z = np.random.default_rng([seed, 1]).standard_normal((n_samples, nz)).astype(np.float32)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.keep, self.log_every, self.log = keep, log_every, log
        self.evaluate, self.eval_every = evaluate, eval_every  # evaluate(trainer) -> {name: number}
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.epoch_rng_state = None  # the generator's state when the current epoch drew its shuffle and z
        self.history = []  # one row per log interval: step, epoch and the means of STATS
        self.changes = []  # options changed on resume: {step, option, old, new}
        self.last_checkpoint = None
        self.stop_signal = None  # "SIGINT" or "SIGTERM" once one asked the run to stop

    # ---- one step ------------------------------------------------------------------------
    def train_step(self, real, z):
        """d_steps D updates, then one G update (against D unrolled k steps ahead, if asked),
        on backend arrays. Returns the stats vector (STATS order)."""
        fake = self.G.forward(z)
        for _ in range(self.config["d_steps"]):
            loss_d, s_real, s_fake = self.d_update(real, fake)
        saved = _snapshot(self.D, self.opt_D, self.terms) if self.config["unroll"] else None
        for _ in range(self.config["unroll"]):
            self.d_update(real, fake)
        loss_g, mmd_value = self.g_update(real, fake)
        if saved is not None:  # first-order unrolling: D goes back to where its own steps left it
            _restore(self.D, self.opt_D, self.terms, saved)
        xp = self.xp
        return xp.stack([xp.asarray(v, np.float32) for v in (
            loss_d, loss_g, sigmoid(s_real).mean(), sigmoid(s_fake).mean(), mmd_value, xp.sign(s_real).mean())])

    def d_update(self, real, fake):
        """One step of D. Real and fake go through D separately (BatchNorm and the minibatch
        layers see one kind at a time); each pass sums its terms' gradients at D's output (and
        at its features) and runs one backward. Returns (L_D, s_real, s_fake)."""
        T, Df, Dh = self.terms, self.D_features, self.D_head
        h_real = Df.forward(real)
        s_real = Dh.forward(h_real)
        loss_real, ds = T.at("d_real", s_real)
        Df.backward(Dh.backward(ds))
        grads_real = {name: g.copy() for name, g in self.D.grads.items()}
        h_fake = Df.forward(fake)
        s_fake = Dh.forward(h_fake)
        loss_fake, ds = T.at("d_fake", s_fake)
        dh = Dh.backward(ds)
        loss_feat, dh_terms = T.at("d_fake_features", h_fake, h_real)
        Df.backward(dh if dh_terms is None else dh + dh_terms)
        for name, layer, k in self.D.named_parameters():
            layer.grads[k] += grads_real[name]
        self.opt_D.step()
        T.after_d(s_real, s_fake)
        return loss_real + loss_fake + loss_feat, s_real, s_fake

    def g_update(self, real, fake):
        """One step of G through D (D's own parameter gradients are not needed: param_grads=False).
        G's terms add their gradients at D's output, at D's features and at G's output.
        Returns (L_G, the MMD term's value)."""
        T, Df, Dh = self.terms, self.D_features, self.D_head
        h_real = Df.forward(real) if T.needs_real_features else None  # under the D G is trained against
        h_fake = Df.forward(fake)
        s_fake = Dh.forward(h_fake)
        loss_adv, ds = T.at("g_fake", s_fake)
        dh = Dh.backward(ds, param_grads=False)
        loss_feat, dh_terms = T.at("g_fake_features", h_fake, h_real)
        dfake = Df.backward(dh if dh_terms is None else dh + dh_terms, param_grads=False)
        loss_pix, dpix = T.at("g_fake_pixels", fake, real)
        self.G.backward(dfake if dpix is None else dfake + dpix)
        self.opt_G.step()
        if self.ema is not None:
            self.ema.update()
        return loss_adv + loss_feat + loss_pix, T.last_mmd

    # ---- the loop ------------------------------------------------------------------------
    def fit(self, data, *, epochs, batch_size):
        """Train on host float32 samples `data` (N, ...) until `epochs` epochs are done.
        Returns "done" or "interrupted" (Ctrl-C or SIGTERM: a checkpoint was saved first)."""
        n = len(data)
        if not 1 <= batch_size <= n:
            raise ValueError(f"GANTrainer.fit: expected 1 <= batch_size <= {n} (the number of samples), "
                             f"got {batch_size}")
        saved = self.config.get("batch_size")
        if self.step_in_epoch and saved != batch_size:
            raise ValueError(f"GANTrainer.fit: this run stopped mid-epoch with batch_size={saved}; "
                             f"resume it with that batch size, got {batch_size}")
        self.config["batch_size"] = batch_size
        if self.config["mmd_weight"] and self.config["mmd_space"] == "pixels" and self.config["mmd_sigmas"] is None:
            from .kernels import default_sigmas
            pick = np.random.default_rng([self.config["seed"], 2]).permutation(n)[:512]
            sample = data[pick]
            self.config["mmd_sigmas"] = list(default_sigmas(sample.reshape(len(sample), -1).astype(np.float64)))
        self.terms.mmd_sigmas = self.config["mmd_sigmas"]
        xp = self.xp
        data_dev = backend_mod.to_backend(np.ascontiguousarray(data, np.float32), xp)  # moved once
        steps = n // batch_size
        self.stop_signal = None
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)} \
            if _main_thread() else {}
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
                    if self.stop_signal is not None:
                        self._check_and_log(stats, logged, self.step_in_epoch)
                        if self.out_dir is not None:
                            self.save_checkpoint()
                            self.log(f"\ninterrupted ({self.stop_signal}): saved {self.last_checkpoint}; "
                                     f"resume with --resume")
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
            for s, handler in previous.items():
                signal.signal(s, handler)
        return "done"

    def _request_stop(self, signum, frame):
        self.stop_signal = signal.Signals(signum).name if signum else "stop requested"

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
            raise TrainingDiverged(f"non-finite loss at step {step} (epoch {self.epoch + 1}, batch {start + i + 1}): "
                                   f"{values}. Training stopped; {self._kept()}.")
        row = dict(step=self.step, epoch=self.epoch + (stop / len(stats)),
                   **{k: float(v) for k, v in zip(STATS, rows.mean(axis=0))})
        self.history.append(row)
        if self.out_dir is not None:
            self._write_log([row], append=True)
        return row

    def _kept(self):
        return f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else \
            "no checkpoint had been written yet"

    # ---- what an epoch leaves behind -----------------------------------------------------
    @property
    def sampler(self):
        """The generator samples come from: the EMA copy when EMA is on, else G."""
        return self.G if self.ema is None else self.ema.model

    def sample(self, z, *, training=False, chunk=128):
        """sampler(z) on the host, in chunks (the layers keep work buffers of the chunk's size).
        training=True uses batch statistics and leaves the running ones as they were."""
        G = self.sampler
        saved = [dict(layer.buffers) for layer in G.layers]
        out = [backend_mod.to_host(G.forward(backend_mod.to_backend(z[i:i + chunk], self.xp), training))
               for i in range(0, len(z), chunk)]
        for layer, buffers in zip(G.layers, saved):
            layer.buffers.update(buffers)
        return np.concatenate(out)

    def end_of_epoch(self):
        if self.out_dir is None:
            return
        tag = f"epoch{self.epoch:03d}"
        which = " (EMA)" if self.ema is not None else ""
        viz.save_samples(self.out_dir / f"samples_{tag}.png",
                         {f"epoch {self.epoch}{which}, eval-mode BatchNorm": self.sample(self.fixed_z),
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
        import csv
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
        parts = {"G": self.G.state_dict(), "D": self.D.state_dict(), "optim_G": self.opt_G.state_dict(),
                 "optim_D": self.opt_D.state_dict(), "lecam": self.terms.lecam_state()}
        if self.ema is not None:
            parts["G_ema"] = self.ema.state_dict()
        arrays = {k: v for prefix, part in parts.items() for k, v in checkpoint.with_prefix(part, prefix).items()}
        arrays["history"] = np.array([[r["step"], r["epoch"], *(r[k] for k in STATS)] for r in self.history],
                                     np.float64).reshape(-1, 2 + len(STATS))
        meta = dict(epoch=self.epoch, step_in_epoch=self.step_in_epoch, step=self.step,
                    rng_state=self.epoch_rng_state or self.rng.bit_generator.state, config=self.config,
                    layer_rng={"G": self.G.rng_states(), "D": self.D.rng_states()}, changes=self.changes)
        return arrays, meta

    def save_checkpoint(self):
        """Write the run's state atomically (after checking that every array is finite: a
        diverged state never replaces a good checkpoint) and keep the newest `keep`."""
        arrays, meta = self.state()
        host = {k: backend_mod.to_host(v) for k, v in arrays.items()}
        bad = sorted(k for k, v in host.items() if v.dtype.kind == "f" and not np.isfinite(v).all())
        if bad:
            raise TrainingDiverged(f"non-finite values in the model's state at step {self.step} "
                                   f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}). Training stopped; "
                                   f"{self._kept()}.")
        path = self.out_dir / "checkpoints" / checkpoint.name_for(self.epoch, self.step)
        try:
            checkpoint.save(path, host, meta)
        except OSError as e:  # a full disk: the temporary file is gone, the last checkpoint intact
            raise OSError(e.errno, f"{e.strerror or e}; {self._kept()}", str(path)) from e
        self.last_checkpoint = path
        checkpoint.prune(path.parent, self.keep)
        return path

    def restore(self, path):
        """Continue from a checkpoint: weights, BatchNorm statistics, Adam moments, RNG, step, log.
        The architecture and the cures must match; a changed learning rate or beta1 is taken
        and recorded (in `changes`, the log and the next checkpoint)."""
        arrays, meta = checkpoint.load_run(path)
        saved = meta["config"]
        for key in ("nz", "cures", "loss", "d_steps", "unroll", "ema", "mmd_weight", "mmd_space", "d_mmd_weight",
                    "feature_matching", "lecam", "feature_layer"):
            if saved.get(key) != self.config[key]:
                raise checkpoint.CheckpointError(f"{path}: saved with {key}={saved.get(key)!r}, this run has "
                                 f"{key}={self.config[key]!r}; resume with the same options")
        try:
            self.G.load_state_dict(checkpoint.subset(arrays, "G"))
            self.D.load_state_dict(checkpoint.subset(arrays, "D"))
            self.opt_G.load_state_dict(checkpoint.subset(arrays, "optim_G"))
            self.opt_D.load_state_dict(checkpoint.subset(arrays, "optim_D"))
            if self.ema is not None:
                self.ema.load_state_dict(checkpoint.subset(arrays, "G_ema"))
            self.terms.load_lecam_state(checkpoint.subset(arrays, "lecam"), self.xp)
            self.G.load_rng_states(meta.get("layer_rng", {}).get("G", {}))
            self.D.load_rng_states(meta.get("layer_rng", {}).get("D", {}))
        except ValueError as e:
            raise checkpoint.CheckpointError(f"{path}: does not fit this model ({e})") from e
        self.changes = list(meta.get("changes", []))
        for key in ("lr_d", "lr_g", "beta1"):
            if saved[key] != self.config[key]:
                self.changes.append(dict(step=meta["step"], option=key, old=saved[key], new=self.config[key]))
                self.log(f"resume: {key} changed from {saved[key]} to {self.config[key]} at step {meta['step']} "
                         f"(recorded in the checkpoint)")
        self.config["mmd_sigmas"] = saved["mmd_sigmas"]
        self.config["batch_size"] = saved.get("batch_size")
        self.epoch, self.step_in_epoch, self.step = meta["epoch"], meta["step_in_epoch"], meta["step"]
        self.epoch_rng_state = meta["rng_state"]
        self.rng.bit_generator.state = meta["rng_state"]
        self.history = [dict(step=int(r[0]), epoch=float(r[1]), **dict(zip(STATS, map(float, r[2:]))))
                        for r in arrays["history"]]
        self.last_checkpoint = Path(path)
        if self.out_dir is not None:
            self._write_log(self.history, append=False)


def latest_checkpoint(out_dir):
    """The newest checkpoint this run's naming wrote in out_dir/checkpoints (by step), or None."""
    found = checkpoint.listed(Path(out_dir) / "checkpoints")
    return found[-1] if found else None


def _snapshot(model, optimizer, terms):
    """Copies of D's parameters, buffers and optimizer state, and LeCam's anchors (for
    unrolling D and going back)."""
    return ({k: v.copy() for k, v in model.state_dict().items()},
            {k: v.copy() for k, v in optimizer.state_dict().items()}, terms.lecam_state())


def _restore(model, optimizer, terms, saved):
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    if terms.lecam:
        terms.lecam.load_state_dict(saved[2])


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
                     + f" r_t {row['r_t']:+.2f}  {rate:.1f} steps/s")
        if self.tty:
            print("\r" + self.line, end="", file=sys.stderr, flush=True)

    def close(self):
        print(("\r" if self.tty else "") + self.line, file=sys.stderr, flush=True)
