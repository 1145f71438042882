"""Reconstruction quality of a trained model on held-out faces: A->A and B->B, PSNR and SSIM.

A model that cannot redraw faces it was not trained on, through their own decoder, will not draw
convincing swaps either; this is the number to watch for overfitting and for blur.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from swapface.errors import InputError
from swapface.eval.metrics import Summary, psnr, ssim, summarise
from swapface.faceset.store import Faceset

SHOWN_FACES = 4  # input | reconstruction pairs kept for the report, per identity


@dataclass
class ReconstructionScores:
    """Per-face PSNR (dB) and SSIM of one identity's held-out faces through its own decoder."""

    identity: str
    faceset: str
    psnr: list[float]
    ssim: list[float]
    pooled_psnr: float  # PSNR of all faces' pooled error: the usual single "N dB" figure
    examples: list[tuple[np.ndarray, np.ndarray]]  # (input, reconstruction) RGB uint8

    def summaries(self) -> dict[str, Summary]:
        return {"psnr": summarise(self.psnr, higher_is_better=True),
                "ssim": summarise(self.ssim, higher_is_better=True)}


def held_out_faces(path: Path, resolution: int, coverage: str, max_faces: int) -> np.ndarray:
    """Up to `max_faces` crops of a faceset, evenly spread over it, resized to the model's resolution
    (N, R, R, 3) uint8. The crops must frame the face as the model's training crops did."""
    with Faceset.open(path) as faceset:
        if faceset.spec.coverage != coverage:
            raise InputError(path, f"crops have '{faceset.spec.coverage}' coverage but the model was trained "
                                   f"on '{coverage}' crops")
        records = faceset.records()
        if not records:
            raise InputError(path, "faceset holds no faces")
        picks = np.unique(np.linspace(0, len(records) - 1, min(max_faces, len(records))).round().astype(int))
        crops = []
        for index in picks:
            crop = faceset.load_image(records[index])
            if crop.shape[0] != resolution:
                interpolation = cv2.INTER_AREA if crop.shape[0] > resolution else cv2.INTER_CUBIC
                crop = cv2.resize(crop, (resolution, resolution), interpolation=interpolation)
            crops.append(crop)
    return np.stack(crops)


def reconstruct(model, faces: np.ndarray, identity: str, batch_size: int, device: str) -> np.ndarray:
    """Faces (N, R, R, 3) uint8 through the encoder and `identity`'s decoder, back to uint8."""
    import torch

    outputs = []
    for start in range(0, len(faces), batch_size):
        batch = torch.from_numpy(faces[start:start + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255
        rgb, _ = model.swap(batch, to=identity)
        outputs.append((rgb.float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(outputs)


def reconstruction_scores(model_dir: Path, held_out: dict[str, Path], max_faces: int = 64, batch_size: int = 16,
                          device: str = "cpu") -> list[ReconstructionScores]:
    """PSNR and SSIM of each given identity ("a", "b") reconstructed through its own decoder."""
    # torch is imported only here: evaluating a swapped video needs no model and should start fast.
    from swapface.modeldir import load_model

    model, config = load_model(model_dir, device=device)
    results = []
    for identity, path in held_out.items():
        faces = held_out_faces(path, config.resolution, config.coverage, max_faces)
        rebuilt = reconstruct(model, faces, identity, batch_size, device)
        shown = np.unique(np.linspace(0, len(faces) - 1, min(SHOWN_FACES, len(faces))).round().astype(int))
        results.append(ReconstructionScores(
            identity=identity, faceset=str(path),
            psnr=[psnr(a, b) for a, b in zip(rebuilt, faces, strict=True)],
            ssim=[ssim(a, b) for a, b in zip(rebuilt, faces, strict=True)],
            pooled_psnr=psnr(rebuilt, faces),
            examples=[(faces[i], rebuilt[i]) for i in shown],
        ))
    return results
