"""The blend mask of a swapped face, in crop space: learned, landmark hull, occlusion, or their
combinations (the minimum: the face ends where any part says); eroded and blurred.

The occlusion part (`swapface.faces.occlusion`) looks at the input crop and leaves out what covers the
face (a microphone, a hand), which the learned and hull masks cannot know about. It also gives a `keep`
mask, the occluders inside the face, that the paste leaves exactly as they were: a multi-band blend
hides the face's outline by letting coarse colour spread past the mask's edge, and inside the face that
spread would tint the object in front of it.

Erosion and blur are given in pixels of a face that spans 256 px in the frame, and scale with the face
(see `crop_pixels`), so one setting suits a close-up and a face far away.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from swapface.faces.masks import hull_mask

# Each mode names its parts; "both" (learned + hull) predates the occlusion network and keeps its name.
MASK_PARTS: dict[str, tuple[str, ...]] = {
    "learned": ("learned",), "hull": ("hull",), "both": ("learned", "hull"), "occlusion": ("occlusion",),
    "learned+occlusion": ("learned", "occlusion"), "hull+occlusion": ("hull", "occlusion"),
    "all": ("learned", "hull", "occlusion"),
}
MASK_MODES = tuple(MASK_PARTS)
REFERENCE_FACE_PX = 256.0
OCCLUDER_SHARPNESS = 0.25  # erosion and feather at an occluder's edge, as a fraction of the outline's


def crop_pixels(px: float, crop_size: int) -> float:
    """Convert `px` (pixels of a face 256 px across in the frame) into crop pixels.

    A face S px across has px * S / 256 frame pixels of erosion, and a frame pixel is crop_size / S
    crop pixels, so S cancels: the amount is fixed relative to the face, whatever its size.
    """
    return px * crop_size / REFERENCE_FACE_PX


class BlendMask(NamedTuple):
    """Float32 (size, size) crop masks in [0, 1]: where the face goes (`alpha`) and, with the occlusion
    part, which pixels must stay as they were whatever the blend does near them (`keep`)."""

    alpha: np.ndarray
    keep: np.ndarray | None = None


def face_mask(mode: str, learned: np.ndarray | None, crop_landmarks: np.ndarray, size: int,
              erode_px: float = 0.0, blur_px: float = 0.0, crop: np.ndarray | None = None) -> BlendMask:
    """The minimum of the parts `mode` names (the model's mask, the landmark hull, the occlusion
    network's visible face in `crop`, the input crop), eroded and feathered; with the occlusion part,
    also the occluders to keep."""
    if mode not in MASK_PARTS:
        raise ValueError(f"mask must be one of {', '.join(MASK_MODES)}, got {mode!r}")
    wanted = MASK_PARTS[mode]
    if wanted == ("learned",) and learned is None:
        raise ValueError("learned mask requested but the model gives none")
    if "occlusion" in wanted and crop is None:
        raise ValueError("occlusion mask requested without the input crop")
    parts = []
    if "learned" in wanted and learned is not None:
        parts.append(np.clip(learned.astype(np.float32), 0.0, 1.0))
    if "hull" in wanted:
        parts.append(hull_mask(crop_landmarks, (size, size)))
    if "occlusion" not in wanted:
        mask = parts[0] if len(parts) == 1 else np.minimum.reduce(parts)
        return BlendMask(erode_and_blur(mask, erode_px, blur_px))
    from swapface.faces.occlusion import visible_face  # torch-free callers never load it

    visible = visible_face(crop[None])[0]
    if not parts:
        return BlendMask(erode_and_blur(visible, erode_px, blur_px))
    # The face's outline gets the wide feather that hides a seam; an occluder's edge is a real, sharp
    # edge in the picture, so it is cut with a narrow one (a wide feather would paint over the object).
    outline = erode_and_blur(np.minimum.reduce(parts), erode_px, blur_px)
    edge_erode, edge_blur = max(erode_px, 0.0) * OCCLUDER_SHARPNESS, blur_px * OCCLUDER_SHARPNESS
    sharp = erode_and_blur(visible, edge_erode, edge_blur)
    # Kept: what is not visible face, grown by the occluder edge's feather (the feather's pixels then stay
    # as they were: that edge is real), inside the face by any part's account, weighted by how far inside
    # (the outline's own feather, where the face ends anyway, still blends as before).
    inside = outline if len(parts) == 1 else erode_and_blur(np.maximum.reduce(parts), erode_px, blur_px)
    return BlendMask(outline * sharp, inside * (1.0 - erode_and_blur(visible, edge_erode + edge_blur, edge_blur)))


def erode_and_blur(mask: np.ndarray, erode_px: float, blur_px: float) -> np.ndarray:
    """Shrink the mask by `erode_px` (negative grows it) and feather its edge over about `blur_px`."""
    radius = int(round(abs(erode_px)))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.erode(mask, kernel) if erode_px > 0 else cv2.dilate(mask, kernel)
    if blur_px > 0.5:
        sigma = blur_px / 2.0
        ksize = int(2 * round(3 * sigma) + 1)
        mask = cv2.GaussianBlur(mask, (ksize, ksize), sigma)
    # Keep the crop's outermost pixels off, so the warped crop's edge never shows in the frame.
    border = max(1, mask.shape[0] // 64)
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = 0, 0, 0, 0
    return mask
