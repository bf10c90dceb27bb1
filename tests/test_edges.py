"""The first hour's edges (issue 26): what a new user and a student met, each held by a test."""
import numpy as np

from minigan import checkpoint, models
from minigan.trainer import GANTrainer, latest_checkpoint

from conftest import run_demo


def images(n=16, seed=0):
    return np.tanh(np.random.default_rng(seed).standard_normal((n, 1, 28, 28))).astype(np.float32)


def test_a_checkpoint_written_from_python_resumes_from_the_command_line(tmp_path):
    """The API's defaults and the CLI's explicit flags are the same options: --plain is the DCGAN as
    published, which is what GANTrainer's defaults train."""
    t = GANTrainer(models.dcgan_generator(100, seed=0), models.dcgan_discriminator(seed=1), nz=100, seed=0,
                   out_dir=tmp_path / "api", log=lambda *a: None)
    t.fit(images(), epochs=1, batch_size=8)
    ckpt = latest_checkpoint(tmp_path / "api")
    r = run_demo("mnist_gan.py", "--plain", "--dry-run", "--resume", ckpt, "--out", tmp_path / "cli", "--epochs", 2)
    assert r.returncode == 0 and f"resumed from {ckpt} at epoch 1, step 2" in r.stdout, r.stderr
    r = run_demo("mnist_gan.py", "--dry-run", "--resume", ckpt, "--out", tmp_path / "default", "--epochs", 2)
    assert r.returncode == 2 and "saved with ema=None, this run has ema=0.999" in r.stderr  # another cure: refused
    assert ("(the default run is --lr 0.003 --ema 0.999 --width 0.5 --batch-size 128; --plain is the DCGAN as "
            "published)") in r.stderr


def test_the_default_stack_hint_goes_only_with_a_refusal_for_other_cures(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    r = run_demo("mnist_gan.py", "--dry-run", "--resume", garbage, "--out", tmp_path / "o")
    assert r.returncode == 2 and str(garbage) in r.stderr and "the default run is" not in r.stderr, r.stderr


def test_a_wgan_critic_without_a_lipschitz_bound_is_said_once_and_its_scores_are_shown_raw(tmp_path):
    r = run_demo("mnist_gan.py", "--dry-run", "--loss", "wgan", "--eval-every", 0, "--out", tmp_path / "w")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("note: --loss wgan without --sn or --gp wgan-gp") == 1
    assert "critic(x)" in r.stderr and "critic(G(z))" in r.stderr and "D(x)" not in r.stderr
    for bounded in (["--sn"], ["--gp", "wgan-gp"]):
        r = run_demo("mnist_gan.py", "--dry-run", "--loss", "wgan", *bounded, "--eval-every", 0, "--out",
                     tmp_path / bounded[-1])
        assert r.returncode == 0 and "note: --loss wgan" not in r.stdout, r.stderr


def test_the_dry_run_takes_the_batch_size_it_is_given(tmp_path):
    r = run_demo("mnist_gan.py", "--dry-run", "--batch-size", 24, "--eval-every", 0, "--out", tmp_path / "d")
    assert r.returncode == 0 and "72 images; 1 epochs of 3 steps, batch 24" in r.stdout, r.stdout + r.stderr
    _, meta = checkpoint.load_run(latest_checkpoint(tmp_path / "d"))
    assert meta["step"] == 3 and meta["batch_size"] == 24


def test_a_step_budget_runs_exactly_that_many_steps_and_resumes(tmp_path):
    points = np.random.default_rng(0).standard_normal((256, 2)).astype(np.float32)
    G, D, _ = models.build_networks("mlp", nz=2, hidden=8)
    t = GANTrainer(G, D, nz=2, out_dir=tmp_path, log=lambda *a: None)
    assert t.fit(points, steps=13, batch_size=32) == "done" and t.step == 13  # 8 a pass: mid-epoch
    _, meta = checkpoint.load_run(latest_checkpoint(tmp_path))
    assert (meta["step"], meta["step_in_epoch"]) == (13, 5)
    G, D, _ = models.build_networks("mlp", nz=2, hidden=8)
    resumed = GANTrainer(G, D, nz=2, out_dir=tmp_path, log=lambda *a: None)
    resumed.restore(latest_checkpoint(tmp_path))
    assert resumed.fit(points, steps=20, batch_size=32) == "done" and resumed.step == 20


def test_mixture_gan_says_its_budget_and_shows_its_defaults(tmp_path):
    help_text = run_demo("mixture_gan.py", "--help").stdout
    flat = " ".join(help_text.split())
    assert "one seed, 200 steps" in flat and "Default: 5850" in flat and "Default: 256" in flat
    mmd = flat[flat.index("--mmd-weight W add"):]
    assert mmd.split("--mmd-space")[0].rstrip().endswith("Default: 1.0")  # this demo's, not the flag's 0
    r = run_demo("mixture_gan.py", "--quick", "--mixtures", "ring", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "this run: 200 steps of batch 256, 1 seed(s) per arm — shorter than the 5,850-step benchmark" in r.stdout


# ---- what a review of the redesign found, held -----------------------------------------------------
def mlp_trainer(out=None, **options):
    G, D, networks = models.build_networks("mlp", nz=2, hidden=8, options=options)
    return GANTrainer(G, D, nz=2, networks=networks, out_dir=out, log=lambda *a: None, **options)


POINTS = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)


def test_numpy_numbers_as_options_are_recorded_as_plain_json(tmp_path):
    t = mlp_trainer(tmp_path, d_steps=np.int64(2), lecam=np.float32(0.5))
    t.fit(POINTS, epochs=1, batch_size=16)
    _, meta = checkpoint.load_run(latest_checkpoint(tmp_path))
    assert meta["config"]["d_steps"] == 2 and type(meta["config"]["d_steps"]) is int


def test_cures_that_cannot_combine_are_refused():
    import pytest
    from minigan.cures import BadOption
    for options, message in ((dict(madgan=3, pack=2), "pack does not apply"),
                             (dict(madgan=3, lecam=0.3), "lecam does not apply"),
                             (dict(ebgan=True, gp="r1"), "gp expect the classifier D"),
                             (dict(unroll=1, unroll_order=2, mrgan=0.2), "does not differentiate mrgan's own work")):
        with pytest.raises(BadOption, match=message):
            mlp_trainer(**options)


def test_a_resume_with_another_seed_is_refused_and_feature_layer_spelled_either_way_is_not(tmp_path):
    import pytest
    from minigan.trainer import OptionsDiffer
    t = mlp_trainer(tmp_path, feature_matching=1.0)
    t.fit(POINTS, epochs=1, batch_size=16)
    ckpt = latest_checkpoint(tmp_path)
    G, D, _ = models.build_networks("mlp", nz=2, hidden=8)
    other = GANTrainer(G, D, nz=2, seed=1, feature_matching=1.0, log=lambda *a: None)
    with pytest.raises(OptionsDiffer, match="saved with seed=0, this run has seed=1"):
        other.restore(ckpt)
    G, D, _ = models.build_networks("mlp", nz=2, hidden=8)
    same = GANTrainer(G, D, nz=2, feature_layer=len(D.layers) - 2, feature_matching=1.0, log=lambda *a: None)
    same.restore(ckpt)  # None meant that very layer
    assert same.step == 4


def test_resuming_from_an_older_checkpoint_of_the_same_folder_is_refused(tmp_path):
    import pytest
    t = mlp_trainer(tmp_path)
    t.fit(POINTS, epochs=2, batch_size=16)
    older = checkpoint.listed(tmp_path / "checkpoints")[0]
    again = mlp_trainer(tmp_path)
    again.restore(older)
    with pytest.raises(checkpoint.FolderInUse, match=r"is not the newest checkpoint .*ckpt-e002-s0000008.npz is"):
        again.fit(POINTS, epochs=3, batch_size=16)


def test_the_trainer_owns_its_folder_while_it_fits(tmp_path):
    import os
    import pytest
    (tmp_path / ".lock").write_text(f"{os.getppid()}\n")  # a live process that is not this one
    with pytest.raises(checkpoint.RunLocked, match="in use by another run"):
        mlp_trainer(tmp_path).fit(POINTS, epochs=1, batch_size=16)
    (tmp_path / ".lock").unlink()
    with checkpoint.RunLock(tmp_path):  # the demo holds it around resume and fit: the trainer takes it again
        mlp_trainer(tmp_path).fit(POINTS, epochs=1, batch_size=16)
        assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()


def test_a_madgan_checkpoint_can_be_sampled(tmp_path):
    G, D, _ = models.build_networks("dcgan", nz=8, options=dict(madgan=2))
    t = GANTrainer(G, D, nz=8, madgan=2, out_dir=tmp_path / "run", log=lambda *a: None)
    t.fit(images(), epochs=1, batch_size=8)
    r = run_demo("mnist_gan.py", "--sample", latest_checkpoint(tmp_path / "run"), "--out", tmp_path / "s",
                 "--n-samples", 4)
    assert r.returncode == 0 and (tmp_path / "s" / "sample.png").is_file(), r.stderr
    from minigan.cures.madgan import by_generator
    order, per_row = by_generator(64, 2)  # the grid: one row per generator
    assert per_row == 32 and list((np.arange(64) % 2)[order]) == [0] * 32 + [1] * 32


def test_a_checkpoint_of_the_previous_version_resumes_and_a_newer_one_is_refused_naming_its_format(tmp_path):
    """Format 1 (minigan 0.1) kept the effective rates lr_d and lr_g, D's structure as a `cures` dict,
    the pixel-MMD bandwidths and a stopped epoch's batch in its config. Rewritten from a new
    checkpoint, it resumes to the same state; a format from the future is one line."""
    import json
    import pytest
    t = mlp_trainer(tmp_path / "new", mmd_weight=1.0)
    t.fit(POINTS, steps=6, batch_size=16)  # stops mid-epoch: 6 of 4 + 4
    arrays, meta = checkpoint.load_run(latest_checkpoint(tmp_path / "new"))
    config = {k: v for k, v in meta["config"].items() if k not in ("lr", "mmd_sigmas") and k not in
              ("sn", "diffaug", "mbstd", "mbdisc", "pack")}
    old_meta = {k: v for k, v in meta.items() if k not in ("format", "batch_size", "networks")}
    old_meta["config"] = dict(config, lr_d=meta["config"]["lr"], lr_g=meta["config"]["lr"], batch_size=16,
                              mmd_sigmas=[float(s) for s in arrays.pop("mmd/sigmas")],
                              cures=dict(sn=False, diffaug=None, mbstd=0, mbdisc=0, pack=1))
    old = tmp_path / "old" / "checkpoints" / latest_checkpoint(tmp_path / "new").name
    checkpoint.save(old, arrays, old_meta)
    resumed = mlp_trainer(tmp_path / "old", mmd_weight=1.0)
    resumed.restore(old)
    assert resumed.batch_size == 16 and resumed.step == 6
    resumed.fit(POINTS, steps=8, batch_size=16)
    t.fit(POINTS, steps=8, batch_size=16)
    a, b = t.model.state_dict(), resumed.model.state_dict()
    assert all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)
    checkpoint.save(tmp_path / "future.npz", arrays, dict(meta, format=3))
    with pytest.raises(checkpoint.CheckpointError, match="written by a newer minigan \\(checkpoint format 3\\)"):
        mlp_trainer(mmd_weight=1.0).restore(tmp_path / "future.npz")
    assert json.dumps(old_meta)  # plain JSON, as the old version wrote it


def test_the_second_order_unroll_resumes_bit_identically(tmp_path):
    from test_trainer import stop_at
    whole = mlp_trainer(tmp_path / "a", unroll=1, unroll_order=2)
    whole.fit(POINTS, epochs=2, batch_size=16)
    part = mlp_trainer(tmp_path / "b", unroll=1, unroll_order=2)
    stop_at(part, 3)
    assert part.fit(POINTS, epochs=2, batch_size=16) == "interrupted"
    resumed = mlp_trainer(tmp_path / "b", unroll=1, unroll_order=2)
    resumed.restore(latest_checkpoint(tmp_path / "b"))
    resumed.fit(POINTS, epochs=2, batch_size=16)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)
