"""Model shapes, presets, determinism of swap, and model-dir I/O errors."""

from __future__ import annotations

import json

import pytest
import torch

from swapface.errors import InputError, SwapfaceError
from swapface.model import PRESETS, ModelConfig, SwapAutoencoder, preset
from swapface.model.discriminator import PatchDiscriminator
from swapface.modeldir import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model


@pytest.mark.parametrize("resolution", [64, 128, 256, 512])
def test_resolutions_give_full_size_outputs(resolution: int) -> None:
    config = preset("tiny", resolution=resolution)
    model = SwapAutoencoder(config)
    x = torch.rand(2, 3, resolution, resolution)
    out = model(x, x)
    assert out.rgb_a.shape == (2, 3, resolution, resolution)
    assert out.mask_b.shape == (2, 1, resolution, resolution)
    assert out.mu.shape == (4, config.latent_channels, 8, 8)  # the preset's 8x8 grid at any resolution
    rgb = out.rgb_a.detach()
    assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1


def test_a_preset_at_another_resolution_keeps_its_8x8_latent() -> None:
    # the CPU proxy runs the 128 preset at 64 px: with the stride kept, its latent was 4x4 (docs/benchmarks.md)
    for name in PRESETS:
        for resolution in (64, 128, 256, 512, 1024):
            config = preset(name, resolution=resolution)
            assert (config.resolution, config.latent_side) == (resolution, 8)
    assert preset("128", resolution=64).widths == (64, 128, 256)


def test_1024_constructs_and_presets_are_distinct() -> None:
    big = SwapAutoencoder(preset("512", resolution=1024))
    assert big.config.latent_side == 8
    channels = big.config.latent_channels + big.config.dense_channels  # the dense code rides as extra channels
    out = big.decode(torch.zeros(1, channels, 8, 8), "a")[0]
    assert out.shape == (1, 3, 1024, 1024)
    assert {c.resolution for c in PRESETS.values()} == {64, 128, 256, 512}


def test_swap_is_deterministic_and_uses_the_other_decoder() -> None:
    torch.manual_seed(0)
    model = SwapAutoencoder(preset("tiny")).eval()
    for p in model.decoders["b"].parameters():  # make the decoders differ
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.rand(3, 3, 64, 64)
    rgb1, mask1 = model.swap(x, "b")
    rgb2, _ = model.swap(x, "b")
    rgb_a, _ = model.swap(x, "a")
    assert torch.equal(rgb1, rgb2)
    assert mask1.shape == (3, 1, 64, 64)
    assert not torch.allclose(rgb1, rgb_a)


def test_config_round_trip_and_validation() -> None:
    config = preset("256", coverage="head")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(SwapfaceError):
        ModelConfig(resolution=100)
    with pytest.raises(SwapfaceError):
        ModelConfig(coverage="face")


def test_model_dir_round_trip(tmp_path) -> None:
    model = SwapAutoencoder(preset("tiny", coverage="tight"))
    save_model(tmp_path, model, training={"steps": 0})
    loaded, config = load_model(tmp_path)
    assert config == model.config and not loaded.training
    data = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert data["resolution"] == 64 and data["coverage"] == "tight"
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])


@pytest.mark.parametrize("damage", ["no_weights", "no_config", "truncated", "bad_json", "wrong_shape"])
def test_model_dir_damage_is_one_line_input_error(tmp_path, damage: str) -> None:
    save_model(tmp_path, SwapAutoencoder(preset("tiny")))
    weights, config = tmp_path / WEIGHTS_FILE, tmp_path / CONFIG_FILE
    if damage == "no_weights":
        weights.unlink()
    elif damage == "no_config":
        config.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "bad_json":
        config.write_text("{not json")
    else:
        save_model(tmp_path / "other", SwapAutoencoder(preset("tiny").replace(base_width=8)))
        weights.write_bytes((tmp_path / "other" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(InputError) as info:
        load_model(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert (WEIGHTS_FILE in message) or (CONFIG_FILE in message)


def test_512_preset_trains_every_parameter() -> None:
    torch.manual_seed(0)
    model = SwapAutoencoder(preset("512"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.rand(1, 3, 512, 512)
    for _ in range(2):  # zero-initialised residual branches open up after the first step
        optimizer.zero_grad()
        out = model(x, x)
        (out.rgb_a.mean() + out.mask_a.mean() + out.rgb_b.mean() + out.mask_b.mean() + out.mu.pow(2).mean()).backward()
        optimizer.step()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())


def test_dense_bottleneck_is_packed_into_the_latent_and_old_configs_load(tmp_path) -> None:
    config = preset("tiny").replace(dense_dims=128)  # 8x8 latent: 128 numbers = 2 extra channels
    model = SwapAutoencoder(config)
    x = torch.rand(2, 3, 64, 64)
    out = model(x, x, swaps=True, cycle=True)
    assert out.mu.shape == (4, config.latent_channels + 2, 8, 8) and config.latent_dims == (16 + 2) * 64
    assert out.swap_ab.shape == out.cycle_a.shape == (2, 3, 64, 64)
    with pytest.raises(SwapfaceError, match="multiple of the latent's 64 cells"):
        preset("tiny").replace(dense_dims=100)
    # a model dir written before dense_dims existed has no such key: it loads as a model without one
    save_model(tmp_path / "old", SwapAutoencoder(preset("tiny")))
    data = json.loads((tmp_path / "old" / CONFIG_FILE).read_text())
    del data["model"]["dense_dims"]
    (tmp_path / "old" / CONFIG_FILE).write_text(json.dumps(data))
    assert load_model(tmp_path / "old")[1].dense_dims == 0


def test_swaps_without_swap_grad_train_the_decoders_only() -> None:
    """A loss on swaps drawn from a detached latent (the swap GAN's) reaches the decoder drawing them, not the
    encoder; with swap_grad (the expression loss) it reaches both."""
    model = SwapAutoencoder(preset("tiny"))
    x = torch.rand(2, 3, 64, 64)
    for swap_grad in (False, True):
        model.zero_grad()
        model(x, x, swaps=True, swap_grad=swap_grad).swap_ab.mean().backward()
        decoder = [p.grad for p in model.decoders["b"].body[0].parameters()]
        assert all(g is not None and bool(g.abs().sum() > 0) for g in decoder)
        encoder = [p.grad for p in model.encoder.parameters()]
        assert all(g is None for g in encoder) != swap_grad


def test_discriminator_convs_have_unit_spectral_norm() -> None:
    """The PatchGAN's slope is bounded: after a few training-mode passes (power iteration), each conv's weight,
    as a matrix, has largest singular value 1, however large its raw weights are."""
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(heads=2)
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            conv.parametrizations.weight.original.mul_(10)
        for _ in range(20):
            discriminator(torch.rand(2, 3, 32, 32))
    sigmas = [torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item() for conv in convs]
    assert len(convs) == 5 and all(abs(s - 1) < 0.05 for s in sigmas), sigmas
