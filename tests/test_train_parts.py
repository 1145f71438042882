"""Building blocks of training on real faces: SSIM against scikit-image, eyes-and-mouth weighted losses,
augmentation geometry, data loading and the resumable sharded sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity

from swapface.errors import SwapfaceError
from swapface.eval.metrics import high_frequency_energy
from swapface.train.augment import YCBCR, augment, colour_moments, transfer_colours
from swapface.train.data import ShardSampler, load_faces, split_holdout
from swapface.train.loop import train
from swapface.train.losses import reconstruction_losses, ssim_map
from swapface.train.options import AugmentOptions, TrainOptions


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def test_ssim_matches_scikit_image() -> None:
    clean = data.astronaut()[:160, 160:320].astype(np.float32) / 255
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    ours = ssim_map(_tensor(clean), _tensor(noisy))[0].permute(1, 2, 0).numpy()
    _, reference = structural_similarity(clean, noisy, channel_axis=2, data_range=1, gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False, full=True)
    inner = (slice(5, -5), slice(5, -5))  # the borders differ by design: we reflect, scikit-image crops
    assert np.abs(ours[inner] - reference[inner]).max() < 1e-3
    assert float(ssim_map(_tensor(clean), _tensor(clean)).min()) > 0.999


def test_faces_load_with_masks_and_feature_weights(faceset_a) -> None:
    faces = load_faces(faceset_a, 64)
    assert faces.images.shape == (60, 3, 64, 64) and faces.images.dtype == torch.uint8
    assert faces.coverage == "whole"
    images, masks, weights = faces.batch(torch.tensor([0, 30]))
    # the hull covers the face, not the whole crop; eyes and mouth weigh more than the cheeks
    assert 0.3 < float(masks.mean()) < 0.8
    eyes = faces.landmarks[0][36:42].mean(0).round().astype(int)
    assert float(weights[0, 0, eyes[1], eyes[0]]) > 2 * float(weights[0, 0, 2, 2])
    train, held = split_holdout(faces, 0.2)
    assert (len(train), len(held)) == (48, 12)
    assert torch.equal(held.images[0], faces.images[48])


def test_error_on_the_eyes_costs_more_than_on_the_cheek(faceset_a) -> None:
    faces = load_faces(faceset_a, 64)
    images, masks, weights = faces.batch(torch.tensor([5]))
    eye = faces.landmarks[5][36:42].mean(0).round().astype(int)
    cheek = faces.landmarks[5][[2, 3, 48]].mean(0).round().astype(int)  # between jaw and mouth corner
    losses = []
    for x, y in (eye, cheek):
        damaged = images.clone()
        damaged[..., y - 2:y + 3, x - 2:x + 3] = 1 - damaged[..., y - 2:y + 3, x - 2:x + 3]
        losses.append(float(reconstruction_losses(damaged, masks, images, masks, weights)["l1"]))
    assert losses[0] > 1.5 * losses[1]


def test_priority_weight_sets_how_much_eyes_and_mouth_count(faceset_a, tmp_path) -> None:
    faces = load_faces(faceset_a, 64)
    points = faces.landmarks[5]
    eye, mouth = points[36:42].mean(0).round().astype(int), points[60:68].mean(0).round().astype(int)
    cheek = points[[2, 3, 48]].mean(0).round().astype(int)
    for weight in (1.0, 3.0, 10.0):
        weights = faces.batch(torch.tensor([5]), weight)[2][0, 0]
        assert float(weights[cheek[1], cheek[0]]) == pytest.approx(1.0, abs=0.05)
        for x, y in (eye, mouth):
            assert float(weights[y, x]) == pytest.approx(weight, rel=0.05)
    with pytest.raises(SwapfaceError, match="priority weight must be at least 1"):
        train(faceset_a, faceset_a, tmp_path / "model", TrainOptions(steps=1, priority_weight=0.5))
    assert not (tmp_path / "model").exists()


def test_augmentation_moves_masks_with_faces_and_warps_only_the_input(faceset_a) -> None:
    faces = load_faces(faceset_a, 64)
    images, masks, weights = faces.batch(torch.arange(8))
    flip_only = AugmentOptions(flip=1.0, rotate=0, scale=0, shift=0, warp=0, brightness=0, contrast=0, saturation=0)
    warped, target, mask, _ = augment(images, masks, weights, flip_only, torch.Generator().manual_seed(0))
    assert torch.allclose(target, images.flip(-1), atol=1e-4)
    assert torch.allclose(mask, masks.flip(-1), atol=1e-4)
    assert torch.allclose(warped, target, atol=1e-4)
    warped, target, mask, _ = augment(images, masks, weights, AugmentOptions(), torch.Generator().manual_seed(0))
    difference = float((warped - target).abs().mean())
    assert 0.005 < difference < 0.1  # warped, but still the same face
    # the mask still sits on the face: the target is brighter-than-background skin where the mask is
    assert float((mask > 0.5).float().mean()) > 0.25


def test_augmentation_keeps_the_faces_detail(faceset_a) -> None:
    """The decoders learn to draw what their targets show: a target moved by the random affine must keep a real
    crop's fine detail. Bilinear resampling at a random sub-pixel offset is a low-pass filter (it keeps about
    2/3 of the high-frequency energy); bicubic keeps nearly all, and the warped input most."""
    faces = load_faces(faceset_a, 64)
    images, masks, weights = faces.batch(torch.arange(0, 60, 2))
    hulls = masks[:, 0].numpy()

    def detail(batch: torch.Tensor) -> float:
        crops = (batch.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        return float(np.mean([high_frequency_energy(c, m) for c, m in zip(crops, hulls, strict=True)]))

    real = detail(images)
    no_colour = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0}
    warped, target, _, _ = augment(images, masks, weights, AugmentOptions(**no_colour),
                                   torch.Generator().manual_seed(0))
    assert detail(target) > 0.9 * real and detail(warped) > 0.8 * real
    assert float(target.min()) >= 0 and float(target.max()) <= 1 and float(warped.max()) <= 1
    _, linear, _, _ = augment(images, masks, weights, AugmentOptions(resample="bilinear", **no_colour),
                              torch.Generator().manual_seed(0))
    assert detail(linear) < 0.8 * real
    with pytest.raises(ValueError, match="resample must be one of bicubic, bilinear"):
        augment(images, masks, weights, AugmentOptions(resample="nearest"), torch.Generator())


def test_colour_transfer_gives_faces_the_other_persons_colours_and_keeps_their_detail(faceset_a, faceset_b) -> None:
    """--color-transfer: a face of B, input and target alike, takes the colour statistics (mean and spread per
    YCbCr axis, inside the face mask) of a face of A; its own detail stays, only its colours move."""
    images_a, masks_a, _ = load_faces(faceset_a, 64).batch(torch.tensor([10]))
    images_b, masks_b, _ = load_faces(faceset_b, 64).batch(torch.arange(0, 48, 6))
    inputs = images_b.flip(-1)  # stands in for the warped input: it must get the same map as its target

    def moments(rgb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ycbcr = torch.einsum("ij,njhw->nihw", YCBCR, rgb)
        inside = mask[:, 0] > 0.5
        values = [ycbcr[i][:, inside[i]] for i in range(len(rgb))]
        return torch.stack([v.mean(1) for v in values]), torch.stack([v.std(1) for v in values])

    gen = torch.Generator().manual_seed(0)
    own, others = colour_moments(images_b, masks_b), colour_moments(images_a, masks_a)
    same = transfer_colours(inputs, images_b, own, others, 0.0, gen)
    assert same[0] is inputs and same[1] is images_b
    new_inputs, new_targets = transfer_colours(inputs, images_b, own, others, 1.0, gen)
    mean_a, spread_a = moments(images_a, masks_a)
    mean_b, spread_b = moments(images_b, masks_b)
    mean_new, spread_new = moments(new_targets, masks_b)
    before = (mean_b - mean_a).abs().max()
    assert before > 0.03  # two people in two shots: their skin differs
    assert (mean_new - mean_a).abs().max() < 0.1 * before  # now the colours of A's face
    assert torch.allclose(spread_new, spread_a.expand_as(spread_new), rtol=0.15, atol=0.005)
    assert torch.allclose(new_inputs, new_targets.flip(-1), atol=1e-5)
    # the face's own detail survives: per image, the new lightness is the old one scaled, not redrawn
    luma_old = torch.einsum("j,njhw->nhw", YCBCR[0], images_b)[masks_b[:, 0] > 0.5]
    luma_new = torch.einsum("j,njhw->nhw", YCBCR[0], new_targets)[masks_b[:, 0] > 0.5]
    assert float(torch.corrcoef(torch.stack([luma_old, luma_new]))[0, 1]) > 0.9


def test_sampler_shards_are_disjoint_and_its_state_resumes_exactly() -> None:
    ranks = [ShardSampler(10, rank, 2, seed=rank) for rank in range(2)]
    seen = [set(torch.cat([r.next(4) for _ in range(5)]).tolist()) for r in ranks]
    assert seen[0] == {0, 2, 4, 6, 8} and seen[1] == {1, 3, 5, 7, 9}
    sampler = ShardSampler(7, 0, 1, seed=3)
    sampler.next(5)
    state = {k: v.clone() for k, v in sampler.state_dict().items()}
    expected = [sampler.next(3).tolist() for _ in range(4)]
    fresh = ShardSampler(7, 0, 1, seed=99)
    fresh.load_state_dict(state)
    assert [fresh.next(3).tolist() for _ in range(4)] == expected
