"""Preview grid: fixed faces of A and B with their reconstructions and swaps, one PNG per interval."""

from __future__ import annotations

import numpy as np
import torch

from swapface.model import SwapAutoencoder


@torch.no_grad()
def preview_grid(model: SwapAutoencoder, faces_a: torch.Tensor, faces_b: torch.Tensor,
                 autocast: torch.autocast) -> np.ndarray:
    """Rows: A, A->A, A->B, B, B->B, B->A; one column per face. Inputs are float (N,3,R,R) in [0,1]."""
    was_training = model.training
    model.eval()
    with autocast:
        rows = [faces_a, model.swap(faces_a, "a")[0], model.swap(faces_a, "b")[0],
                faces_b, model.swap(faces_b, "b")[0], model.swap(faces_b, "a")[0]]
    model.train(was_training)
    grid = torch.stack([torch.cat(list(row.float().clamp(0, 1)), dim=2) for row in rows])  # (6,3,R,N*R)
    image = torch.cat(list(grid), dim=1)  # (3, 6R, NR)
    return (image.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
