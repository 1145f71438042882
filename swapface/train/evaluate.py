"""Held-out evaluation during training, by the very scorer `swapface eval --model` uses
(eval/heldout.py: same landmark fits on enlarged crops, same identity, NME, expression, sharpness and
light numbers), on a fixed sample of held-out faces. Logged as `eval_<from>2<to>_<number>`, e.g.
`eval_a2b_mouth_corr` or `eval_a2a_psnr`."""

from __future__ import annotations

import numpy as np
import torch

from swapface.eval.heldout import HeldOutFaces, headline, score_direction, scoring_backend
from swapface.model import SwapAutoencoder
from swapface.train.data import FaceTensors

MAX_EVAL_FACES = 16  # per identity: dlib's descriptor costs ~90 ms a face on a CPU core


def _held_out(identity: str, faces: FaceTensors, mean_embedding: np.ndarray) -> HeldOutFaces:
    """Up to MAX_EVAL_FACES faces, evenly spaced (in clip order, so expression scores see motion)."""
    count = min(MAX_EVAL_FACES, len(faces))
    picked = faces.select(torch.linspace(0, len(faces) - 1, count).round().long())
    crops = picked.images.permute(0, 2, 3, 1).cpu().numpy()
    return HeldOutFaces(identity, "held-out slice", np.ascontiguousarray(crops), picked.landmarks, mean_embedding)


class HeldOutEvaluator:
    """Scores a model on fixed held-out faces of A and B; the face backend is loaded once."""

    def __init__(self, heldout_a: FaceTensors, heldout_b: FaceTensors, mean_a: np.ndarray, mean_b: np.ndarray) -> None:
        self.faces = {"a": _held_out("a", heldout_a, mean_a), "b": _held_out("b", heldout_b, mean_b)}
        self.references = {"a": mean_a, "b": mean_b}
        self.backend = scoring_backend()

    @torch.no_grad()
    def __call__(self, model: SwapAutoencoder, autocast: torch.autocast, device: torch.device) -> dict[str, float]:
        was_training = model.training
        model.eval()
        numbers: dict[str, float] = {}
        try:
            for source, faces in self.faces.items():
                for to in self.faces:
                    scores = score_direction(model, faces, to, self.references, self.backend, device=str(device),
                                             real_faces=self.faces[to], autocast=autocast)
                    numbers.update({f"eval_{source}2{to}_{key}": value for key, value in headline(scores).items()})
        finally:
            model.train(was_training)
        return numbers
