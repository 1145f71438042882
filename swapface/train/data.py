"""Training data: a faceset's crops, hull masks and loss weights at the model's resolution, held in
memory as uint8 tensors (on the training device), and a resumable per-rank shuffling sampler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from swapface.errors import InputError
from swapface.faces.masks import dense_face_mask, feature_priority, hull_mask
from swapface.faceset import Faceset
from swapface.train.options import PRIORITY_WEIGHT


@dataclass
class FaceTensors:
    """N faces of one identity: images (N,3,R,R), masks (N,1,R,R), priority maps (N,1,R,R), all uint8;
    landmarks (N,68,2) in model pixels and identity embeddings (N,128), for evaluation."""

    images: torch.Tensor
    masks: torch.Tensor
    priority: torch.Tensor
    landmarks: np.ndarray
    embeddings: np.ndarray
    coverage: str

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device) -> FaceTensors:
        return FaceTensors(self.images.to(device), self.masks.to(device), self.priority.to(device), self.landmarks,
                           self.embeddings, self.coverage)

    def select(self, index: torch.Tensor) -> FaceTensors:
        rows = index.cpu().numpy()
        return FaceTensors(self.images[index], self.masks[index], self.priority[index], self.landmarks[rows],
                           self.embeddings[rows], self.coverage)

    def batch(self, index: torch.Tensor, priority_weight: float = PRIORITY_WEIGHT
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Float (images, masks, loss weights) for the faces `index`; images and masks in [0, 1], loss weights 1
        on most of the face and `priority_weight` on the eyes and mouth."""
        index = index.to(self.images.device)
        priority = self.priority[index].float() / 255
        return (self.images[index].float() / 255, self.masks[index].float() / 255,
                1 + (priority_weight - 1) * priority)


def load_faces(path: str | Path, resolution: int) -> FaceTensors:
    """Read every face of a faceset, resized to `resolution`, with its face mask (the mesh oval where the
    faceset has dense points, else the 68-point hull) and eyes-and-mouth priority map."""
    faceset = Faceset.open(path)
    try:
        records = faceset.records()
        if not records:
            raise InputError(path, "faceset holds no faces")
        scale = resolution / faceset.spec.size
        images, masks, priority, landmarks = [], [], [], []
        for record in records:
            crop = faceset.load_image(record)
            if crop.shape[0] != resolution:
                interp = cv2.INTER_AREA if crop.shape[0] > resolution else cv2.INTER_CUBIC
                crop = cv2.resize(crop, (resolution, resolution), interpolation=interp)
            points = record.crop_landmarks * scale
            images.append(crop.transpose(2, 0, 1))
            landmarks.append(points.astype(np.float32))
            dense = record.crop_dense()  # the mesh's oval follows the real jaw and hairline: the better label
            mask = hull_mask(points, (resolution, resolution)) if dense is None else \
                dense_face_mask(dense * scale, (resolution, resolution))
            masks.append(np.round(mask * 255).astype(np.uint8))
            priority.append(np.round(feature_priority(points, (resolution, resolution)) * 255).astype(np.uint8))
        return FaceTensors(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks))[:, None],
                           torch.from_numpy(np.stack(priority))[:, None], np.stack(landmarks),
                           np.stack([r.embedding for r in records]).astype(np.float32), faceset.spec.coverage)
    finally:
        faceset.close()


def split_holdout(faces: FaceTensors, fraction: float) -> tuple[FaceTensors, FaceTensors | None]:
    """Training faces and a held-out tail (the last `fraction` of the faceset, in source/frame order,
    so held-out frames are later in the video than the training ones)."""
    held = int(len(faces) * fraction)
    if held == 0:
        return faces, None
    cut = len(faces) - held
    return faces.select(torch.arange(cut)), faces.select(torch.arange(cut, len(faces)))


class ShardSampler:
    """Shuffled epochs over this rank's shard (every world_size-th face), from a seeded generator.

    Its state (generator, current permutation, position) goes into checkpoints, so a resumed run
    draws exactly the batches the uninterrupted one would have.
    """

    def __init__(self, size: int, rank: int, world_size: int, seed: int) -> None:
        self.shard = torch.arange(rank, size, world_size)
        if len(self.shard) == 0:
            raise ValueError(f"rank {rank} has no faces: {size} faces for {world_size} ranks")
        self.generator = torch.Generator().manual_seed(seed)
        self.order = self.shard[torch.randperm(len(self.shard), generator=self.generator)]
        self.position = 0

    def next(self, batch_size: int) -> torch.Tensor:
        picked = []
        while batch_size > 0:
            if self.position == len(self.order):
                self.order = self.shard[torch.randperm(len(self.shard), generator=self.generator)]
                self.position = 0
            take = min(batch_size, len(self.order) - self.position)
            picked.append(self.order[self.position:self.position + take])
            self.position += take
            batch_size -= take
        return torch.cat(picked)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state(), "order": self.order.clone(),
                "position": torch.tensor([self.position])}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.position = int(state["position"][0])
