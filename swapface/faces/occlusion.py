"""Which pixels of an aligned face crop are visible face (DeepFaceLab's XSeg idea), so a swap leaves a
microphone, a hand or hair in front of the face alone.

No installable face parser ships offline weights, so this is our own small U-Net, trained on the
shared clips' faces with synthetic occluders pasted over them (`swapface.train.occlusion`); its
weights ship with the package. It sees the crop at OCCLUSION_SIZE px whatever the crop's size or
coverage (it was trained on all three coverages), and answers a mask at the crop's size.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OCCLUSION_SIZE = 96
WEIGHTS = Path(__file__).with_name("models") / "occlusion.safetensors"
WIDTHS = (16, 24, 32, 48)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class OcclusionNet(nn.Module):
    """A small U-Net: RGB in [0, 1] (N, 3, S, S) -> logits (N, 1, S, S) of "visible face".

    Sized to train on one CPU thread: it works at half resolution (a strided stem) and a last light
    layer, fed the full-resolution image again, sharpens the upsampled edge.
    """

    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 12, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(12),
                                  nn.ReLU(inplace=True))
        self.down = nn.ModuleList()
        cin = 12
        for width in widths:
            self.down.append(_block(cin, width))
            cin = width
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in range(len(widths) - 1))
        self.coarse = nn.Conv2d(widths[0], 1, 1)
        self.refine = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([x, skips[i]], 1))
        coarse = F.interpolate(self.coarse(x), size=image.shape[-2:], mode="bilinear", align_corners=False)
        return coarse + self.refine(torch.cat([image, torch.sigmoid(coarse)], 1))


def read_weights(path: Path = WEIGHTS) -> dict[str, torch.Tensor]:
    """A weights file (stored in fp16) as fp32 tensors for OcclusionNet.load_state_dict."""
    from safetensors.torch import load_file

    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}


@lru_cache(maxsize=1)
def load_occlusion_net() -> OcclusionNet:
    """The shipped network, in eval mode on the CPU (one per process; it is small)."""
    net = OcclusionNet()
    net.load_state_dict(read_weights())
    return net.eval()


def visible_face(crops: np.ndarray, net: OcclusionNet | None = None) -> np.ndarray:
    """Float32 (N, H, W) masks in [0, 1]: 1 where the (N, H, W, 3) uint8 crops show visible face."""
    if len(crops) == 0:
        return np.zeros((0, *crops.shape[1:3]), np.float32)
    net = net or load_occlusion_net()
    size = crops.shape[1]
    small = np.stack([cv2.resize(c, (OCCLUSION_SIZE, OCCLUSION_SIZE), interpolation=cv2.INTER_AREA) for c in crops])
    x = torch.from_numpy(small).permute(0, 3, 1, 2).float().div_(255.0)
    with torch.no_grad():
        # The crop and its mirror image, averaged: faces are symmetric, the network's errors are not
        # (on the held-out occluder test this lifted the IoU from 0.41 to 0.56 at one point of training).
        both = net(torch.cat([x, x.flip(-1)]))
        logits = (both[: len(x)] + both[len(x):].flip(-1)) / 2
        if size != OCCLUSION_SIZE:
            logits = F.interpolate(logits, size=(size, crops.shape[2]), mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)[:, 0].numpy()
