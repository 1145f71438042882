"""Held-out evaluation during training, with the same metrics `swapface eval` reports: reconstruction
PSNR/SSIM of A->A and B->B, and how much A->B outputs look like B (dlib identity distance)."""

from __future__ import annotations

import numpy as np
import torch

from swapface.eval.metrics import identity_distance, psnr, ssim
from swapface.faces import make_backend
from swapface.model import SwapAutoencoder
from swapface.train.data import FaceTensors

MAX_EVAL_FACES = 16  # per identity: dlib's descriptor costs ~90 ms a face on a CPU core


def _pick(faces: FaceTensors) -> FaceTensors:
    count = min(MAX_EVAL_FACES, len(faces))
    return faces.select(torch.linspace(0, len(faces) - 1, count).round().long())


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return (images.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


class HeldOutEvaluator:
    """Scores a model on fixed held-out faces of A and B; the face backend is loaded once."""

    def __init__(self, heldout_a: FaceTensors, heldout_b: FaceTensors, mean_a: np.ndarray, mean_b: np.ndarray) -> None:
        self.faces = {"a": _pick(heldout_a), "b": _pick(heldout_b)}
        self.means = {"a": mean_a, "b": mean_b}
        self.backend = make_backend()  # for embed only (dlib's ResNet in every backend)

    @torch.no_grad()
    def __call__(self, model: SwapAutoencoder, autocast: torch.autocast, device: torch.device) -> dict[str, float]:
        was_training = model.training
        model.eval()
        scores: dict[str, float] = {}
        try:
            for name, other in (("a", "b"), ("b", "a")):
                faces = self.faces[name]
                source = faces.images.to(device).float() / 255
                with autocast:
                    rebuilt = _to_uint8(model.swap(source, name)[0])
                    swapped = _to_uint8(model.swap(source, other)[0])
                real = faces.images.permute(0, 2, 3, 1).numpy()
                scores[f"eval_psnr_{name}"] = psnr(rebuilt, real)
                scores[f"eval_ssim_{name}"] = ssim(rebuilt, real)
                embeddings = np.stack([self.backend.embed(image, points)
                                       for image, points in zip(swapped, faces.landmarks, strict=True)])
                to_target = identity_distance(embeddings, self.means[other])
                to_source = identity_distance(embeddings, self.means[name])
                scores[f"eval_id_{name}2{other}"] = float(np.mean(to_target))
                scores[f"eval_id_{name}2{other}_to_source"] = float(np.mean(to_source))
                scores[f"eval_closer_{name}2{other}"] = float(np.mean(to_target < to_source))
        finally:
            model.train(was_training)
        return scores
