"""Training on real facesets (tiny preset, 64 px): learning, exact resume, crash-safe checkpoints,
NaN rollback, stop on SIGTERM, and one-line errors for bad model dirs and facesets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from swapface.errors import SwapfaceError
from swapface.media.images import read_rgb
from swapface.model import SwapAutoencoder, preset
from swapface.modeldir import load_model, save_model
from swapface.train import distributed, loop
from swapface.train.checkpoint import CHECKPOINT_FILE, load_checkpoint
from swapface.train.loop import METRICS_FILE, train
from swapface.train.options import TrainOptions

PYTHON = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _options(**changes) -> TrainOptions:
    base = dict(preset="tiny", batch_size=8, lr=1e-3, log_every=1, save_every=1000, preview_every=1000,
                snapshot_every=0)
    return TrainOptions(**{**base, **changes})


def _metrics(model_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (model_dir / METRICS_FILE).read_text().splitlines()]


def _quiet(_text: str) -> None:
    pass


def test_loss_falls_and_outputs_are_written(faceset_a, faceset_b, tmp_path) -> None:
    model_dir = tmp_path / "model"
    result = train(faceset_a, faceset_b, model_dir, _options(steps=100, log_every=20, preview_every=100, holdout=0.2,
                                                             eval_every=100), message=_quiet)
    records = _metrics(model_dir)
    losses = [m["loss"] for m in records if "loss" in m]
    assert len(losses) == 5 and result.step == 100
    assert losses[-1] < 0.6 * losses[0], losses
    # held-out faces (last 20% of each faceset) are scored with the eval metrics
    evaluation = records[-1]
    assert evaluation["event"] == "eval" and evaluation["step"] == 100
    for name in "ab":
        assert 12 < evaluation[f"eval_{name}2{name}_psnr"] < 40 and 0.2 < evaluation[f"eval_{name}2{name}_ssim"] < 1
    assert 0.1 < evaluation["eval_a2b_d_target"] < 1.5 and 0 <= evaluation["eval_a2b_closer"] <= 1
    # the same scorer as `swapface eval --model`: NME, expression and sharpness are logged too
    assert 0 < evaluation["eval_a2b_nme"] < 1 and 0 < evaluation["eval_a2b_sharpness"] < 2
    assert -1 <= evaluation["eval_a2b_mouth_corr"] <= 1 and evaluation["eval_a2b_dyn_nme"] > 0
    # the swap stage needs nothing but the model dir
    model, config = load_model(model_dir)
    assert (config.resolution, config.coverage) == (64, "whole")
    grid = read_rgb(model_dir / "previews" / "step-00000100.png")
    assert grid.shape == (6 * 64, 4 * 64, 3)
    rows = grid.reshape(6, 64, 4 * 64, 3).astype(np.float32)
    assert np.abs(rows[1] - rows[2]).mean() > 2  # A->A and A->B come from different decoders
    faces = torch.from_numpy(rows[0] / 255).permute(2, 0, 1)
    faces = torch.stack(faces.split(64, dim=2))
    _, mask = model.swap(faces, "b")
    assert 0.2 < float(mask.mean()) < 0.9  # the learned mask covers the face, not the whole crop


def test_resume_continues_exactly(faceset_a, faceset_b, tmp_path) -> None:
    """A run of 6 steps extended to 12 retraces a straight run of 12 exactly. (Extending a run moves its late
    phase, which is a share of --steps, so both run without one here.)"""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(faceset_a, faceset_b, straight, _options(steps=12, save_every=6, snapshot_every=6, late_phase=0),
          message=_quiet)
    snapshots = sorted(p.parent.name for p in (straight / "snapshots").glob("*/model.safetensors"))
    assert snapshots == ["step-00000006", "step-00000012"]
    load_model(straight / "snapshots" / "step-00000006")  # a snapshot is a model dir of its own
    train(faceset_a, faceset_b, resumed, _options(steps=6, save_every=6, late_phase=0), message=_quiet)
    messages: list[str] = []
    train(faceset_a, faceset_b, resumed, _options(steps=12, save_every=6, late_phase=0), message=messages.append)
    assert any("resumed" in m and "step 6" in m for m in messages)
    a, b = _metrics(straight), _metrics(resumed)
    assert [m["step"] for m in b] == list(range(1, 13))
    for key in ("loss", "l1", "ssim", "mask", "kl"):
        assert [m[key] for m in a] == [m[key] for m in b], key
    weights_a, _ = load_checkpoint(straight / CHECKPOINT_FILE)
    weights_b, state = load_checkpoint(resumed / CHECKPOINT_FILE)
    assert state["step"] == 12
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


@pytest.mark.slow
def test_quality_levers_train_resume_exactly_and_are_recorded(faceset_a, faceset_b, tmp_path) -> None:
    """Expression loss (with its landmark regressor), cycle loss, lr dropout and a dense bottleneck at once:
    their losses are logged, a resumed run matches an uninterrupted one, config.json records every lever;
    a late phase turns the PatchGAN on for its share of the steps."""
    levers = dict(expression_weight=1.0, cycle_weight=0.5, lr_dropout=0.5, dense_dims=128, late_phase=0)
    straight, resumed, late = tmp_path / "straight", tmp_path / "resumed", tmp_path / "late"
    train(faceset_a, faceset_b, straight, _options(steps=6, save_every=3, **levers), message=_quiet)
    train(faceset_a, faceset_b, resumed, _options(steps=3, save_every=3, **levers), message=_quiet)
    train(faceset_a, faceset_b, resumed, _options(steps=6, save_every=3, **levers), message=_quiet)
    a, b = _metrics(straight), _metrics(resumed)
    assert all(m["expression"] > 0 and m["cycle"] > 0 and m["landmarks"] > 0 for m in a)
    for key in ("loss", "expression", "cycle", "landmarks"):
        assert [m[key] for m in a] == [m[key] for m in b], key
    config = json.loads((straight / "config.json").read_text())
    assert config["model"]["dense_dims"] == 128
    assert {k: config["training"][k] for k in ("expression_weight", "cycle_weight", "lr_dropout")} == {
        "expression_weight": 1.0, "cycle_weight": 0.5, "lr_dropout": 0.5}
    train(faceset_a, faceset_b, late, _options(steps=6, save_every=6, late_phase=0.5, late_gan_weight=0.1),
          message=_quiet)
    assert [("gan_g" in m) for m in _metrics(late)] == [False] * 3 + [True] * 3


def test_runs_end_without_random_warp_by_default(faceset_a, faceset_b, tmp_path) -> None:
    """The default late phase: over the last 40% of a run's steps the encoder sees the target itself (no random
    warp to guess at), with no discriminator; before it, and when pretraining a base, the input is warped."""

    def warped(trainer: loop.Trainer, step: int) -> bool:
        trainer.step = step
        inputs, targets, _, _ = trainer.batch("a")
        return not torch.allclose(inputs, targets, atol=1e-4)

    dist = distributed.setup("cpu")
    pair = loop.Trainer(faceset_a, faceset_b, tmp_path / "pair", _options(steps=10), dist, _quiet)
    base = loop.Trainer(faceset_a, faceset_a, tmp_path / "base", _options(steps=10), dist, _quiet)
    try:
        assert pair.discriminator is None
        assert [warped(pair, step) for step in range(10)] == [True] * 6 + [False] * 4
        assert warped(base, 9)
    finally:
        pair.close()
        base.close()
    # An open-ended run (stopped here by SIGTERM after its first step) says it has no end to place it at.
    messages: list[str] = []
    result = train(faceset_a, faceset_b, tmp_path / "open", _options(), message=messages.append,
                   progress=lambda _progress: signal.raise_signal(signal.SIGTERM))
    assert result.interrupted and any("no end to place the late phase" in m for m in messages)


def test_lr_decay_winds_the_learning_rate_down_along_a_cosine(faceset_a, faceset_b, tmp_path) -> None:
    """Over the last half of a 6-step run the logged rate follows the cosine to zero, and the optimizer steps at
    it: from the same 4 steps, the decayed run's last two updates (at 0.75 and 0.25 of the rate) move the weights
    about half as far as two at the full rate."""
    runs = {name: tmp_path / name for name in ("four", "full", "decayed")}
    train(faceset_a, faceset_b, runs["four"], _options(steps=4, ema=0), message=_quiet)
    train(faceset_a, faceset_b, runs["full"], _options(steps=6, ema=0), message=_quiet)
    train(faceset_a, faceset_b, runs["decayed"], _options(steps=6, ema=0, lr_decay=0.5), message=_quiet)
    rates = [m["lr"] / 1e-3 for m in _metrics(runs["decayed"])]
    assert rates == pytest.approx([1, 1, 1, 0.75, 0.25, 0], abs=1e-9)
    assert json.loads((runs["decayed"] / "config.json").read_text())["training"]["lr_decay"] == 0.5
    weights = {name: torch.cat([w.flatten() for w in load_model(path)[0].state_dict().values()])
               for name, path in runs.items()}
    moved_full = (weights["full"] - weights["four"]).norm()
    moved_decayed = (weights["decayed"] - weights["four"]).norm()
    assert 0.3 < moved_decayed / moved_full < 0.7
    with pytest.raises(SwapfaceError, match="lr-decay is a share of the run"):
        train(faceset_a, faceset_b, tmp_path / "x", TrainOptions(preset="tiny", lr_decay=0.2), message=_quiet)


_KILL_DURING_SAVE = """
import os, signal, sys
import safetensors.torch
from swapface.train.loop import train
from swapface.train.options import TrainOptions
real = safetensors.torch.save_file
def dying_save(tensors, filename, metadata=None):
    real(tensors, filename, metadata=metadata)
    if metadata:  # the checkpoint (not model.safetensors): leave it half-written, then die
        with open(filename, "r+b") as fh:
            fh.truncate(os.path.getsize(filename) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
import swapface.modeldir
swapface.modeldir.save_file = dying_save
train(sys.argv[1], sys.argv[2], sys.argv[3], TrainOptions(preset="tiny", batch_size=4, steps=4, save_every=2,
      log_every=1, preview_every=1000, snapshot_every=0))
"""


def test_checkpoint_write_killed_midway_leaves_previous_one(faceset_a, faceset_b, tmp_path) -> None:
    model_dir = tmp_path / "model"
    train(faceset_a, faceset_b, model_dir, _options(batch_size=4, steps=2, save_every=2), message=_quiet)
    before = (model_dir / CHECKPOINT_FILE).read_bytes()
    run = subprocess.run([PYTHON, "-c", _KILL_DURING_SAVE, str(faceset_a), str(faceset_b), str(model_dir)],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert (model_dir / CHECKPOINT_FILE).read_bytes() == before
    assert load_checkpoint(model_dir / CHECKPOINT_FILE)[1]["step"] == 2
    load_model(model_dir)
    result = train(faceset_a, faceset_b, model_dir, _options(batch_size=4, steps=4, save_every=2), message=_quiet)
    assert result.step == 4 and load_checkpoint(model_dir / CHECKPOINT_FILE)[1]["step"] == 4


def test_non_finite_loss_rolls_back_and_lowers_lr(faceset_a, faceset_b, tmp_path, monkeypatch) -> None:
    calls = {"n": 0}
    real_kl = loop.kl_divergence

    def kl_with_a_nan(mu, logvar):
        calls["n"] += 1
        value = real_kl(mu, logvar)
        return value * float("nan") if calls["n"] == 7 else value

    monkeypatch.setattr(loop, "kl_divergence", kl_with_a_nan)
    messages: list[str] = []
    model_dir = tmp_path / "model"
    result = train(faceset_a, faceset_b, model_dir, _options(steps=10, save_every=5), message=messages.append)
    assert result.step == 10
    assert any("rolled back to step 5" in m for m in messages), messages
    records = _metrics(model_dir)
    events = [r for r in records if r.get("event") == "rollback"]
    assert len(events) == 1 and events[0]["bad_step"] == 7
    assert records[-1]["lr"] == 0.5e-3 and np.isfinite(records[-1]["loss"])
    model, _ = load_model(model_dir)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _cli(*args: str) -> list[str]:
    return [PYTHON, "-m", "swapface.cli.main", "train", *args]


def test_sigterm_saves_a_checkpoint_then_exits(faceset_a, faceset_b, tmp_path) -> None:
    model_dir = tmp_path / "model"
    proc = subprocess.Popen(_cli(str(faceset_a), str(faceset_b), "-m", str(model_dir), "--preset", "tiny",
                                 "--batch-size", "4", "--log-every", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 120
    while not ((model_dir / METRICS_FILE).is_file() and _metrics(model_dir)) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    step = load_checkpoint(model_dir / CHECKPOINT_FILE)[1]["step"]
    assert step >= 1 and step == _metrics(model_dir)[-1]["step"]
    assert f"stopped at step {step}" in err


def test_bad_model_dir_is_one_line_error(faceset_a, faceset_b, tmp_path) -> None:
    model_dir = tmp_path / "model"
    train(faceset_a, faceset_b, model_dir, _options(batch_size=2, steps=1), message=_quiet)
    checkpoint = model_dir / CHECKPOINT_FILE
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    run = subprocess.run(_cli(str(faceset_a), str(faceset_b), "-m", str(model_dir), "--steps", "2"),
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and CHECKPOINT_FILE in run.stderr, run.stderr
    (model_dir / "model.safetensors").unlink()
    run = subprocess.run(_cli(str(faceset_a), str(faceset_b), "-m", str(tmp_path / "new"), "--preset", "tiny",
                              "--init-from", str(model_dir)), env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "model.safetensors: missing" in run.stderr, run.stderr
    plain = tmp_path / "plain"  # a finished model without a checkpoint is not overwritten
    save_model(plain, SwapAutoencoder(preset("tiny")))
    before = (plain / "model.safetensors").read_bytes()
    run = subprocess.run(_cli(str(faceset_a), str(faceset_b), "-m", str(plain), "--preset", "tiny"), env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "--init-from" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert (plain / "model.safetensors").read_bytes() == before


def test_facesets_with_different_coverage_are_refused(faceset_a, faceset_b, tmp_path) -> None:
    tight = tmp_path / "tight"
    shutil.copytree(faceset_b, tight)
    with sqlite3.connect(tight / "faceset.sqlite") as db:
        db.execute("UPDATE meta SET value = 'tight' WHERE key = 'coverage'")
    run = subprocess.run(_cli(str(faceset_a), str(tight), "-m", str(tmp_path / "m"), "--preset", "tiny"),
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "coverage 'tight'" in lines[0] and str(tight) in lines[0], run.stderr
    assert not (tmp_path / "m").exists()
    assert os.path.isdir(faceset_b)


@pytest.mark.parametrize(("option", "value", "words"), [("--device", "gpu", "unknown device"),
                                                        ("--precision", "fp16", "fp32 or bf16"),
                                                        ("--resolution", "100", "power of two")])
def test_bad_options_are_one_line_errors(faceset_a, faceset_b, tmp_path, option, value, words) -> None:
    run = subprocess.run(_cli(str(faceset_a), str(faceset_b), "-m", str(tmp_path / "m"), "--preset", "tiny",
                              option, value), env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and words in run.stderr, run.stderr
    assert not (tmp_path / "m").exists()
