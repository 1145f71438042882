"""Training options: `swapface train` with no options trains the library's defaults; on real facesets:
--init-from with --freeze encoder or --anchor-weight, pretraining a base model, the PatchGAN in bf16 (and its
resume), the swap GAN, the code GAN, the published weight average."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from swapface.cli import train as train_cli
from swapface.cli.main import app
from swapface.errors import SwapfaceError
from swapface.model import SwapAutoencoder
from swapface.model.discriminator import PatchDiscriminator
from swapface.modeldir import load_model
from swapface.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, unflatten
from swapface.train.data import load_faces
from swapface.train.loop import METRICS_FILE, TrainResult, train
from swapface.train.options import TrainOptions


def _options(**changes) -> TrainOptions:
    base = dict(preset="tiny", batch_size=4, lr=1e-3, log_every=1, save_every=1000, preview_every=1000,
                snapshot_every=0)
    return TrainOptions(**{**base, **changes})


def test_init_from_with_frozen_encoder_trains_only_decoders(faceset_a, faceset_b, tmp_path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    train(faceset_a, faceset_b, first, _options(steps=3), message=lambda _t: None)
    messages: list[str] = []
    train(faceset_b, faceset_a, second, _options(steps=3, init_from=first, freeze=("encoder",)),
          message=messages.append)
    assert any(f"initialised weights from {first}" in m for m in messages)
    donor, _ = load_model(first)
    trained, _ = load_model(second)
    for (name, before), after in zip(donor.state_dict().items(), trained.state_dict().values(), strict=True):
        if name.startswith("encoder."):
            assert torch.equal(before, after), name
    assert not all(torch.equal(before, after) for before, after in zip(
        donor.decoders.parameters(), trained.decoders.parameters(), strict=True))


def test_one_faceset_on_both_sides_pretrains_both_decoders(faceset_a, tmp_path) -> None:
    """DeepFaceLab's pretraining: with the same faceset on both sides, both decoders learn its faces, so
    either decoder of the base draws them and a pair trained --init-from it starts from there."""
    messages: list[str] = []
    train(faceset_a, faceset_a, tmp_path / "base", _options(steps=150, ema=0.0), message=messages.append)
    assert any("pretraining a base model" in m for m in messages)
    records = [json.loads(line) for line in (tmp_path / "base" / METRICS_FILE).read_text().splitlines()]
    assert not any("code_d" in r for r in records)  # no identities to tell apart: the code GAN (a default) is off
    assert json.loads((tmp_path / "base" / "config.json").read_text())["training"]["code_gan_weight"] == 0.0
    base, _ = load_model(tmp_path / "base")
    fresh = SwapAutoencoder(base.config)
    faces = load_faces(faceset_a, base.config.resolution).batch(torch.arange(0, 60, 4))[0]

    def error(model: SwapAutoencoder, identity: str) -> float:
        return float((model.swap(faces, identity)[0] - faces).abs().mean())

    learnt = {identity: error(base, identity) for identity in "ab"}
    for identity, value in learnt.items():
        assert value < 0.6 * error(fresh, identity), identity
    assert abs(learnt["a"] - learnt["b"]) < 0.25 * max(learnt.values())


def test_gan_in_bf16_trains_and_resumes(faceset_a, faceset_b, tmp_path) -> None:
    model_dir = tmp_path / "model"
    options = dict(gan_weight=0.1, precision="bf16", save_every=2)
    train(faceset_a, faceset_b, model_dir, _options(steps=2, **options), message=lambda _t: None)
    tensors, state = load_checkpoint(model_dir / CHECKPOINT_FILE)
    assert any(k.startswith("disc.") for k in tensors) and any(k.startswith("disc_optim.") for k in tensors)
    result = train(faceset_a, faceset_b, model_dir, _options(steps=4, **options), message=lambda _t: None)
    records = [json.loads(line) for line in (model_dir / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and result.step == 4
    assert all(torch.isfinite(torch.tensor([r["gan_g"], r["gan_d"], r["loss"]])).all() for r in records)
    assert 0 < records[-1]["gan_d"] < 4  # hinge loss of a discriminator that is neither perfect nor lost


def test_model_dir_publishes_the_weight_average(faceset_a, faceset_b, tmp_path) -> None:
    for ema in (0.999, 0.0):
        model_dir = tmp_path / f"ema{ema}"
        train(faceset_a, faceset_b, model_dir, _options(steps=5, ema=ema), message=lambda _t: None)
        tensors, _ = load_checkpoint(model_dir / CHECKPOINT_FILE)
        published = load_file(model_dir / "model.safetensors")
        name = "decoders.a.body.0.weight"
        if ema:
            assert torch.equal(published[name], tensors[f"ema.{name}"])
            assert not torch.equal(published[name], tensors[f"model.{name}"])
        else:
            assert torch.equal(published[name], tensors[f"model.{name}"])
            assert not any(k.startswith("ema.") for k in tensors)


def test_time_limit_stops_at_a_saved_step_and_a_rerun_goes_on(faceset_a, faceset_b, tmp_path) -> None:
    model_dir, messages = tmp_path / "model", []
    first = train(faceset_a, faceset_b, model_dir, _options(time_limit=2.0), message=messages.append)
    assert not first.interrupted and first.step >= 1
    assert any(f"time limit reached at step {first.step}" in m for m in messages)
    assert load_checkpoint(model_dir / CHECKPOINT_FILE)[1]["step"] == first.step
    second = train(faceset_a, faceset_b, model_dir, _options(time_limit=1.0), message=lambda _t: None)
    assert second.step > first.step


def test_anchor_keeps_a_pair_near_its_base_and_resumes_exactly(faceset_a, faceset_b, tmp_path) -> None:
    """L2-SP: --anchor-weight pulls every weight back toward --init-from's, so a pair drifts less from its base
    (yet still learns); a resumed run reads the base again and matches a straight one."""
    base = tmp_path / "base"
    train(faceset_a, faceset_b, base, _options(steps=3, ema=0.0), message=lambda _t: None)
    start = load_file(base / "model.safetensors")

    def drift(model_dir) -> float:
        weights = load_file(model_dir / "model.safetensors")
        return sum(float((weights[k].float() - start[k].float()).square().sum()) for k in start) ** 0.5

    runs = {}
    for name, weight in (("free", 0.0), ("anchored", 250.0)):  # lr 1e-3: a quarter of the way back each step
        runs[name] = tmp_path / name
        train(faceset_b, faceset_a, runs[name], _options(steps=12, ema=0.0, init_from=base, anchor_weight=weight,
                                                         late_phase=0), message=lambda _t: None)
    assert 0 < drift(runs["anchored"]) < 0.5 * drift(runs["free"])
    resumed = tmp_path / "resumed"
    for steps in (6, 12):
        # (an extended run moves its late phase, a share of --steps: both runs go without one)
        train(faceset_b, faceset_a, resumed, _options(steps=steps, save_every=6, ema=0.0, init_from=base,
                                                      anchor_weight=250.0, late_phase=0), message=lambda _t: None)
    losses = [[m["loss"] for m in map(json.loads, (d / METRICS_FILE).read_text().splitlines())]
              for d in (runs["anchored"], resumed)]
    assert losses[0] == losses[1]
    assert json.loads((resumed / "config.json").read_text())["training"]["anchor_weight"] == 250.0
    with pytest.raises(SwapfaceError, match="give --init-from too"):
        train(faceset_b, faceset_a, tmp_path / "x", _options(steps=1, anchor_weight=1.0), message=lambda _t: None)


def test_swap_gan_judges_each_swap_as_its_target_and_resumes_exactly(faceset_a, faceset_b, tmp_path) -> None:
    """--swap-gan-weight: a discriminator with a head per identity judges real faces and swaps, each face by the
    head of the identity it claims (A's faces drawn as B by head B); a resumed run matches a straight one."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    options = dict(swap_gan_weight=0.1, ema=0.0)
    said: list[str] = []
    train(faceset_a, faceset_b, straight, _options(steps=4, **options), message=said.append)
    assert sum("--swap-gan-weight from scratch" in line for line in said) == 1  # said once, at the start
    for steps in (2, 4):
        train(faceset_a, faceset_b, resumed, _options(steps=steps, save_every=2, **options), message=lambda _t: None)
    records = [[json.loads(line) for line in (d / METRICS_FILE).read_text().splitlines()] for d in (straight, resumed)]
    assert [r["loss"] for r in records[0]] == [r["loss"] for r in records[1]]
    assert all("swap_gan_g" in r and "gan_d" in r and "gan_g" not in r for r in records[0])  # recon GAN stays off
    assert json.loads((resumed / "config.json").read_text())["training"]["swap_gan_weight"] == 0.1
    with pytest.raises(SwapfaceError, match=r"size mismatch for net\.\d+\.bias.*--swap-gan-weight"):
        train(faceset_a, faceset_b, resumed, _options(steps=6, gan_weight=0.1, ema=0.0), message=lambda _t: None)

    tensors, _ = load_checkpoint(resumed / CHECKPOINT_FILE)
    discriminator = PatchDiscriminator(heads=2)
    discriminator.load_state_dict(unflatten("disc", tensors))
    discriminator.eval()  # judge with the saved spectral-norm estimate: a training-mode pass would refine it
    faces = torch.cat([load_faces(path, 32).images[:3].float() / 255 for path in (faceset_a, faceset_b)])
    claims = torch.tensor([0, 0, 0, 1, 1, 1])
    with torch.no_grad():
        heads, judged = discriminator(faces), discriminator(faces, claims)
    assert heads.shape[1] == 2 and not torch.allclose(heads[:, 0], heads[:, 1])
    assert torch.equal(judged[:, 0], heads[torch.arange(6), claims])


def _last_code_d(model_dir, count: int = 10) -> float:
    records = [json.loads(line) for line in (model_dir / METRICS_FILE).read_text().splitlines()]
    return sum(r["code_d"] for r in records[-count:]) / count


def test_code_gan_leaves_codes_that_do_not_tell_whose_face_and_resumes_exactly(faceset_a, faceset_b,
                                                                               tmp_path) -> None:
    """--code-gan-weight (0.01 by default): a discriminator learns to tell A's latent codes from B's, and the
    encoder learns to fool it. From the same start, a frozen encoder gives itself away (the discriminator's loss
    falls far below chance's ln 2 = 0.69), a free one keeps its codes at chance; a resumed run matches a straight
    one, and a checkpoint made without it resumes with a new discriminator."""
    plain = tmp_path / "plain"
    train(faceset_a, faceset_b, plain, _options(steps=20, code_gan_weight=0.0), message=lambda _t: None)
    frozen, free = tmp_path / "frozen", tmp_path / "free"
    train(faceset_a, faceset_b, frozen, _options(steps=60, init_from=plain, freeze=("encoder",), code_gan_weight=1.0),
          message=lambda _t: None)
    train(faceset_a, faceset_b, free, _options(steps=60, init_from=plain, code_gan_weight=1.0),
          message=lambda _t: None)
    assert _last_code_d(frozen) < 0.2
    assert _last_code_d(free) > 0.6

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    options = dict(code_gan_weight=0.1, ema=0.0)
    train(faceset_a, faceset_b, straight, _options(steps=4, **options), message=lambda _t: None)
    for steps in (2, 4):
        train(faceset_a, faceset_b, resumed, _options(steps=steps, save_every=2, **options), message=lambda _t: None)
    losses = [[json.loads(line)["loss"] for line in (d / METRICS_FILE).read_text().splitlines()]
              for d in (straight, resumed)]
    assert losses[0] == losses[1]
    assert json.loads((resumed / "config.json").read_text())["training"]["code_gan_weight"] == 0.1
    said: list[str] = []  # a run from before the code GAN was a default resumes with a new discriminator
    assert train(faceset_a, faceset_b, plain, _options(steps=22, code_gan_weight=0.1), message=said.append).step == 22
    assert any("no code discriminator" in line for line in said)


def test_train_command_without_options_trains_the_library_defaults(tmp_path, monkeypatch) -> None:
    """A default changed in TrainOptions must reach users of the CLI too (they once drifted apart)."""
    seen: list[TrainOptions] = []

    def record(_a, _b, _model_dir, options: TrainOptions, **_kwargs) -> TrainResult:
        seen.append(options)
        return TrainResult(1, False, {}, None, True)

    monkeypatch.setattr(train_cli, "train", record)
    facesets = [str(tmp_path / "a"), str(tmp_path / "b")]  # not read: train itself is replaced
    result = CliRunner().invoke(app, ["train", *facesets, "--model", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert seen == [TrainOptions()]
    result = CliRunner().invoke(app, ["train", *facesets, "--model", str(tmp_path / "m"),
                                      "--late-phase", "0.1", "--time-limit", "2", "--freeze", "encoder"])
    assert result.exit_code == 0, result.output
    assert seen[1] == TrainOptions(late_phase=0.1, time_limit=120.0, freeze=("encoder",))
