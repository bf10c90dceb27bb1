"""The loop that never loses work: epochs, RNG replay, checkpoints, the NaN stop, signals,
logging. What one step computes is minigan/gan.py; GANTrainer puts the two together.

Randomness: one host generator (seed=) draws each epoch's shuffle and all its z at the
epoch's start; they move to the backend once, so nothing is read from the device inside a step
(the gradient penalties' random points are drawn on the host and uploaded, a write that does
not wait for the device; feature MMD's bandwidth, a median, is the one read). Saving that generator's state at the epoch's start, plus the step reached and the
generators of random layers (DiffAugment), makes a resumed run bit-identical to an
uninterrupted one, even from mid-epoch (Ctrl-C, SIGTERM).

Callbacks see the loop from outside (the demos' --trace, the tests): an object with any of
    step_context(trainer)   a context manager around the next step, or None
    after_step(trainer)     called after each step (trainer.request_stop() ends the run cleanly)
"""
import contextlib
import csv
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import backend as backend_mod
from . import checkpoint, viz
from .kernels import threads
from . import cures as cure_registry
from .cures import BadOption
from .gan import GAN, STATS, OptionsDiffer

FORMAT = 2  # of the checkpoints this version writes; format 1 (minigan 0.1) is read too

__all__ = ["Trainer", "GANTrainer", "BadOption", "OptionsDiffer", "TrainingDiverged", "latest_checkpoint", "STATS"]


class TrainingDiverged(RuntimeError):
    """A loss or the model's state became NaN or Inf; the message names the step and the last
    good checkpoint."""


class Trainer:
    """Trains `model` (a minigan.gan.GAN) on host float32 samples, in epochs of shuffled batches.

    out_dir: where the run keeps log.csv, losses.png, samples_epochNNN.png, metrics.jsonl and
    checkpoints/ (the newest `keep`); None keeps nothing on disk. A new run claims the folder
    (checkpoint.claim_folder): one holding another run's files is refused unless `overwrite`
    (or both runs are `dry_run`s); `hint` is added to that refusal. evaluate(trainer) -> {name:
    number} runs every `eval_every` epochs and after the last. log(text) prints; callbacks: see the module.
    """

    def __init__(self, model, *, out_dir=None, keep=3, log_every=10, n_samples=64, log=print, evaluate=None,
                 eval_every=0, callbacks=(), overwrite=False, dry_run=False, hint=""):
        self.model = model
        self.rng = np.random.default_rng(model.seed)
        self.fixed_z = np.random.default_rng([model.seed, 1]).standard_normal((n_samples, model.nz)).astype(np.float32)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.keep, self.log_every, self.log = keep, log_every, log
        self.evaluate, self.eval_every, self.last_epoch = evaluate, eval_every, None
        self.callbacks = list(callbacks)
        self.overwrite, self.dry_run, self.hint = overwrite, dry_run, hint
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.epoch_rng_state = None  # the generator's state when the current epoch drew its shuffle and z
        self.batch_size = None  # the batch of the epoch under way (a mid-epoch resume must keep it)
        self.history = []  # one row per log interval: step, epoch and the means of STATS
        self.changes = []  # options changed on resume: {step, option, old, new}
        self.last_checkpoint = None
        self.stop_signal = None  # "SIGINT" or "SIGTERM" once one asked the run to stop
        self.claimed = False
        self.prepared = False

    # the model's parts, by the names users know
    config = property(lambda self: self.model.config)
    G = property(lambda self: self.model.G)
    D = property(lambda self: self.model.D)
    xp = property(lambda self: self.model.xp)
    sampler = property(lambda self: self.model.sampler)

    def train_step(self, real, z):
        if self.xp is not np:
            return self.model.train_step(real, z)
        with threads.one_blas_thread():  # the convolutions' worker threads, undisturbed (kernels/threads.py)
            return self.model.train_step(real, z)

    def request_stop(self, signal_name="stop requested"):
        """End the run after the current step, saving a checkpoint (what Ctrl-C and SIGTERM do)."""
        self.stop_signal = signal_name

    # ---- the loop --------------------------------------------------------------------------
    def fit(self, data, *, batch_size, epochs=None, steps=None):
        """Train on host float32 samples `data` (N, ...) until `epochs` epochs are done (math.inf:
        until a callback's request_stop or a signal ends the run), or until the run's step count
        reaches `steps`. Returns "done" or "interrupted" (Ctrl-C, SIGTERM or request_stop: a
        checkpoint was saved first)."""
        n = len(data)
        if not 1 <= batch_size <= n:
            raise ValueError(f"Trainer.fit: expected 1 <= batch_size <= {n} (the number of samples), "
                             f"got {batch_size}")
        if (epochs is None) == (steps is None):
            raise ValueError(f"Trainer.fit: expected epochs or steps, got epochs={epochs}, steps={steps}")
        if self.step_in_epoch and self.batch_size != batch_size:
            raise ValueError(f"Trainer.fit: this run stopped mid-epoch with batch_size={self.batch_size}; "
                             f"resume it with that batch size, got {batch_size}")
        self.model.check_data(batch_size, data.shape[1:])
        with contextlib.ExitStack() as owned:
            if self.out_dir is not None:  # one run owns the folder at a time (re-entrant for this process)
                owned.enter_context(checkpoint.RunLock(self.out_dir))
            return self.run_epochs(data, batch_size, epochs if steps is None else math.ceil(steps / (n // batch_size)),
                             steps)

    def run_epochs(self, data, batch_size, epochs, steps):
        """fit's loop, the folder claimed and locked: epochs of steps, logs, checkpoints, signals."""
        n = len(data)
        per_epoch = n // batch_size
        self._claim_folder()
        if not self.prepared:
            self.model.prepare(data)
            self.prepared = True
        for note in self.model.notes:
            self.log(f"note: {note}")
        self.batch_size = batch_size
        self.last_epoch = epochs  # evaluated whatever eval_every says, so a run always ends scored
        xp = self.xp
        data_dev = backend_mod.to_backend(np.ascontiguousarray(data, np.float32), xp)  # moved once
        self.stop_signal = None
        main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            while self.epoch < epochs and (steps is None or self.step < steps):
                if self.epoch_rng_state is None:
                    self.epoch_rng_state = self.rng.bit_generator.state
                self.rng.bit_generator.state = self.epoch_rng_state
                order = self.rng.permutation(n)[:per_epoch * batch_size].reshape(per_epoch, batch_size)
                zs = self.rng.standard_normal((per_epoch, batch_size, self.model.nz)).astype(np.float32)
                order, zs = backend_mod.to_backend(order, xp), backend_mod.to_backend(zs, xp)
                stats = xp.zeros((per_epoch, len(STATS)), np.float32)
                bar = _Progress(self.epoch + 1, epochs, per_epoch, self.model.adversarial.labels)
                logged = self.step_in_epoch
                while self.step_in_epoch < per_epoch:
                    if self.stop_signal is not None or (steps is not None and self.step >= steps):
                        self._check_and_log(stats, logged, self.step_in_epoch)
                        bar.close()
                        if self.out_dir is not None:
                            self.save_checkpoint()
                            if self.stop_signal is not None:
                                self.log(f"\ninterrupted ({self.stop_signal}): saved {self.last_checkpoint}; "
                                         f"resume with --resume")
                        return "done" if self.stop_signal is None else "interrupted"
                    i = self.step_in_epoch
                    with contextlib.ExitStack() as around:
                        for cb in self.callbacks:
                            context = getattr(cb, "step_context", lambda t: None)(self)
                            if context is not None:
                                around.enter_context(context)
                        stats[i] = self.train_step(data_dev[order[i]], zs[i])
                    self.step_in_epoch += 1
                    self.step += 1
                    for cb in self.callbacks:
                        getattr(cb, "after_step", lambda t: None)(self)
                    if self.step_in_epoch % self.log_every == 0 or self.step_in_epoch == per_epoch:
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

    def _on_signal(self, signum, frame):
        self.request_stop(signal.Signals(signum).name)

    def _claim_folder(self):
        """A new run, or a resume from another folder's checkpoint, claims out_dir; a resume in its
        own folder continues it (the log is rewritten from the checkpoint's history)."""
        if self.out_dir is None or self.claimed:
            return
        own = (self.last_checkpoint is not None
               and self.last_checkpoint.resolve().parent == (self.out_dir / "checkpoints").resolve())
        newer = [p for p in checkpoint.listed(self.out_dir / "checkpoints") if own and _readable(p) and
                 int(checkpoint.NAME.match(p.name).group(2)) > self.step]
        if newer:  # continuing would interleave two futures of one run in one folder
            raise checkpoint.FolderInUse(f"{self.last_checkpoint} is not the newest checkpoint of {self.out_dir} "
                                         f"({newer[-1].name} is); resume from that, or continue from this one "
                                         "into another folder")
        if not own:
            checkpoint.claim_folder(self.out_dir, overwrite=self.overwrite, dry_run=self.dry_run, hint=self.hint,
                                    log=self.log)
        if self.history:
            self._write_log(self.history, append=False)
        self.claimed = True

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

    # ---- what an epoch leaves behind -------------------------------------------------------
    def sample(self, z, *, training=False, chunk=128):
        """The sampler's output for z, on the host, in chunks (the layers keep work buffers of the
        chunk's size). training=True uses batch statistics and leaves the running ones as they were."""
        G = self.sampler
        saved = [dict(layer.buffers) for layer in G.leaves()]
        out = [backend_mod.to_host(G.forward(backend_mod.to_backend(z[i:i + chunk], self.xp), training))
               for i in range(0, len(z), chunk)]
        for layer, buffers in zip(G.leaves(), saved):
            layer.buffers.update(buffers)
        return np.concatenate(out)

    def end_of_epoch(self):
        if self.out_dir is None:
            return
        which = "" if self.sampler is self.G else " (EMA)"
        order, per_row = self.model.grid(len(self.fixed_z))
        viz.save_samples(self.out_dir / f"samples_epoch{self.epoch:03d}.png",
                         {f"epoch {self.epoch}{which}, eval-mode BatchNorm": self.sample(self.fixed_z)[order],
                          "train-mode BatchNorm": self.sample(self.fixed_z, training=True)[order]}, nrow=per_row)
        if self.history:
            viz.plot_history(self.out_dir / "losses.png", self.history)
        if self.evaluate and self.eval_every and (self.epoch % self.eval_every == 0 or self.epoch == self.last_epoch):
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

    # ---- checkpoints -----------------------------------------------------------------------
    def state(self):
        """(arrays, meta): the model's state under its names, the log's history, and the run's
        place (epoch, step, the epoch's RNG state, the batch of an epoch under way)."""
        arrays = dict(self.model.state_dict())
        arrays["history"] = np.array([[r["step"], r["epoch"], *(r[k] for k in STATS)] for r in self.history],
                                     np.float64).reshape(-1, 2 + len(STATS))
        meta = dict(format=FORMAT, epoch=self.epoch, step_in_epoch=self.step_in_epoch, step=self.step,
                    rng_state=self.epoch_rng_state or self.rng.bit_generator.state, config=self.config,
                    batch_size=self.batch_size, networks=self.model.structure(),
                    layer_rng=self.model.rng_states(), changes=self.changes)
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
        """Continue from a checkpoint: weights, BatchNorm statistics, Adam moments, the cures'
        state, RNG, step, log. The networks and the cures must be the same (OptionsDiffer names
        the difference); a changed learning rate or beta1 is taken and recorded (in `changes`,
        the log and the next checkpoint). Nothing is written here."""
        arrays, meta = checkpoint.load_run(path)
        saved = _upgrade(meta, arrays)
        self.model.check_resume(saved, meta.get("networks"), path)
        try:
            self.model.load_state_dict(arrays)
            self.model.load_rng_states(meta.get("layer_rng", {}))
        except ValueError as e:
            raise checkpoint.CheckpointError(f"{path}: does not fit this model ({e})") from e
        self.changes = list(meta.get("changes", []))
        for key in ("lr", "beta1", *(k for cls in cure_registry.CURES for k in cls.changeable)):
            if saved.get(key) != self.config[key]:
                self.changes.append(dict(step=meta["step"], option=key, old=saved.get(key), new=self.config[key]))
                self.log(f"resume: {key} changed from {saved.get(key)} to {self.config[key]} at step {meta['step']} "
                         f"(recorded in the checkpoint)")
        self.epoch, self.step_in_epoch, self.step = meta["epoch"], meta["step_in_epoch"], meta["step"]
        self.batch_size = meta.get("batch_size")
        self.epoch_rng_state = meta["rng_state"]
        self.rng.bit_generator.state = meta["rng_state"]
        self.history = [dict(step=int(r[0]), epoch=float(r[1]), **dict(zip(STATS, map(float, r[2:]))))
                        for r in arrays["history"]]
        self.last_checkpoint = Path(path)
        self.prepared = True  # the cures' data-derived values came with their state


def _upgrade(meta, arrays):
    """The config of a checkpoint in this version's terms. Format 1 (minigan 0.1) recorded the
    effective learning rates lr_d and lr_g, the pixel-MMD bandwidths in the config and the batch
    of a stopped epoch there too; D's structure as a `cures` dict (its layers are compared by
    the state's names and shapes instead)."""
    config = dict(meta["config"])
    version = meta.get("format", 1)
    if version > FORMAT:
        raise checkpoint.CheckpointError(f"written by a newer minigan (checkpoint format {version}); this version "
                                         f"reads formats 1 to {FORMAT}")
    if version == 1:
        config["lr"] = config.get("lr_g")
        config["lr_d"] = None if config.get("lr_d") == config.get("lr_g") else config.get("lr_d")
        config["lr_g"] = None
        config.update(config.pop("cures", None) or {})
        config["mbstd"] = config.get("mbstd") or None
        config["mbdisc"] = config.get("mbdisc") or None
        if config.get("mmd_sigmas") is not None and "mmd/sigmas" not in arrays:
            arrays["mmd/sigmas"] = np.array(config["mmd_sigmas"], np.float64)
        config["mmd_sigmas"] = None
        meta.setdefault("batch_size", config.pop("batch_size", None))
    return config


def _readable(path):
    try:
        checkpoint.load_run(path)
        return True
    except checkpoint.CheckpointError:
        return False


def latest_checkpoint(out_dir):
    """The newest checkpoint this run's naming wrote in out_dir/checkpoints (by step), or None."""
    found = checkpoint.listed(Path(out_dir) / "checkpoints")
    return found[-1] if found else None


class GANTrainer(Trainer):
    """Trainer(GAN(G, D, ...)): the GAN's keywords (nz, backend, lr, beta1, seed, feature_layer,
    networks and the cures' options: minigan/gan.py, minigan/cures/) and the loop's (out_dir,
    keep, log_every, n_samples, log, evaluate, eval_every, callbacks, overwrite, dry_run, hint)."""

    def __init__(self, G, D, *, nz, out_dir=None, keep=3, log_every=10, n_samples=64, log=print, evaluate=None,
                 eval_every=0, callbacks=(), overwrite=False, dry_run=False, hint="", **options):
        super().__init__(GAN(G, D, nz=nz, **options), out_dir=out_dir, keep=keep, log_every=log_every,
                         n_samples=n_samples, log=log, evaluate=evaluate, eval_every=eval_every, callbacks=callbacks,
                         overwrite=overwrite, dry_run=dry_run, hint=hint)


class _Progress:
    """One line per epoch, redrawn in place on a terminal: step, Loss_D, Loss_G, D's scores on real
    and fake (labelled as the loss means them), MMD², r_t."""

    def __init__(self, epoch, epochs, steps, labels):
        self.prefix = f"epoch {epoch}" + (f"/{epochs}" if epochs != math.inf else "")
        self.steps, self.start = steps, time.perf_counter()
        self.tty, self.line, self.labels = sys.stderr.isatty(), "", labels

    def show(self, i, row):
        done = int(20 * i / self.steps)
        rate = i / max(time.perf_counter() - self.start, 1e-9)
        real, fake = self.labels
        self.line = (f"{self.prefix} [{'#' * done}{'.' * (20 - done)}] {i}/{self.steps} "
                     f"Loss_D {row['loss_d']:.3f} Loss_G {row['loss_g']:.3f} {real} {row['d_x']:.3f} "
                     f"{fake} {row['d_g_z']:.3f}" + (f" MMD² {row['mmd']:.4f}" if row["mmd"] else "")
                     + f" r_t {row['r_t']:+.2f}  {rate:.1f} steps/s")
        if self.tty:
            print("\r" + self.line, end="", file=sys.stderr, flush=True)

    def close(self):
        if self.line:
            print(("\r" if self.tty else "") + self.line, file=sys.stderr, flush=True)
            self.line = ""
