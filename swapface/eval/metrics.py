"""Numeric primitives for judging a swap: pure functions on numpy arrays, shared by `swapface eval` and
by training (which logs the same numbers on held-out faces, so a training curve shows quality, not loss).

Conventions: images are RGB, either uint8 (0-255) or float in [0, 1]; landmarks are the iBUG 68 points
as (68, 2) pixel coordinates. Every function says which direction is better.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from swapface.faces.align import eye_centres

MAX_PSNR = 100.0  # dB reported for identical images, so means over many faces stay finite


# -- reconstruction quality --------------------------------------------------------------------------

def _data_range(a: np.ndarray) -> float:
    """uint8 images span 255; float images are taken to be in [0, 1] (what the model outputs)."""
    return 255.0 if a.dtype == np.uint8 else 1.0


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all pixels (higher is better).

    Works on one image or a batch (then it is the PSNR of the pooled error, which is what "the
    reconstruction is N dB" usually means). Identical inputs give MAX_PSNR instead of infinity.
    """
    _check_pair(a, b)
    data_range = _data_range(a)
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse <= 0.0:
        return MAX_PSNR
    return float(min(MAX_PSNR, 10.0 * np.log10(data_range**2 / mse)))


def _channel_axis(image: np.ndarray) -> int | None:
    """Where the colour channels are in one image: HxWxC (numpy, OpenCV) or CxHxW (torch)."""
    if image.ndim == 2:
        return None
    if image.shape[-1] in (1, 3, 4):
        return -1
    if image.shape[0] in (1, 3, 4):
        return 0
    raise ValueError(f"cannot tell the channel axis of an image of shape {image.shape}")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004) in [-1, 1] (higher is better).

    One image (HxW, HxWxC or CxHxW) or a batch (NxHxWxC or NxCxHxW, averaged per image). SSIM follows
    local structure rather than raw error, so it ranks blur and ringing the way a viewer does.
    """
    # Imported here: everything else in this module needs only numpy and OpenCV, so a GPU machine without
    # scikit-image can still score models (bench/gpu.sh).
    from skimage.metrics import structural_similarity

    _check_pair(a, b)
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 4:
        return float(np.mean([ssim(x, y) for x, y in zip(a, b, strict=True)]))
    axis = _channel_axis(a)
    data_range = _data_range(a)
    return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=data_range,
                                       channel_axis=axis))


# -- identity ------------------------------------------------------------------------------------------

SAME_PERSON_DISTANCE = 0.6  # dlib's 128-D descriptor: the same person is usually closer than this


def identity_distance(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray | float:
    """Euclidean distance of one (D,) or many (N, D) identity embeddings to a reference (lower = more
    alike). dlib's descriptor is trained so that this distance separates people at about 0.6."""
    embeddings = np.asarray(embeddings, np.float64)
    reference = np.asarray(reference, np.float64)
    distances = np.linalg.norm(embeddings - reference, axis=-1)
    return float(distances) if distances.ndim == 0 else distances


# -- expression and pose -------------------------------------------------------------------------------

def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres: the face-size unit that makes NME independent of resolution."""
    left, right = eye_centres(np.asarray(landmarks, np.float64))
    return float(np.linalg.norm(right - left))


def landmark_nme(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Normalised mean error: mean point-to-point distance between two 68-point sets, divided by the
    reference's inter-ocular distance (lower is better; 0 = same shape and place).

    A swap should keep the source's expression and pose, so the swapped face's landmarks should sit
    where the source's were.
    """
    predicted = np.asarray(predicted, np.float64)
    reference = np.asarray(reference, np.float64)
    scale = inter_ocular(reference)
    if scale <= 0:
        raise ValueError("reference landmarks have zero inter-ocular distance")
    return float(np.linalg.norm(predicted - reference, axis=1).mean() / scale)


# A generic 3D face (anthropometric model of Martins & Batista, in cm) at 14 rigid iBUG points, written in
# camera axes (x right, y down, z away from the viewer) so that a face looking into the camera has zero
# rotation. Jaw-line points are left out: they are silhouette points and slide with pose.
POSE_POINTS = np.array([17, 21, 22, 26, 36, 39, 42, 45, 31, 35, 48, 54, 57, 8])
FACE_MODEL_3D = np.array([
    [-6.825897, -6.760612, -4.402142], [-1.330353, -7.122144, -6.903745],
    [1.330353, -7.122144, -6.903745], [6.825897, -6.760612, -4.402142],
    [-5.311432, -5.485328, -3.987654], [-1.789930, -5.393625, -4.413414],
    [1.789930, -5.393625, -4.413414], [5.311432, -5.485328, -3.987654],
    [-2.005628, -1.409845, -6.165652], [2.005628, -1.409845, -6.165652],
    [-2.774015, 2.080775, -5.048531], [2.774015, 2.080775, -5.048531],
    [0.000000, 3.116408, -6.097667], [0.000000, 7.415691, -4.070434],
])


@dataclass(frozen=True)
class HeadPose:
    """Head rotation in degrees relative to looking straight into the camera.

    yaw: turn about the vertical axis; pitch: nod about the horizontal axis; roll: tilt in the image
    plane (R = Rz(roll) @ Ry(yaw) @ Rx(pitch), camera axes x right, y down, z forward).
    """

    yaw: float
    pitch: float
    roll: float

    def as_array(self) -> np.ndarray:
        return np.array([self.yaw, self.pitch, self.roll])


def camera_matrix(image_size: tuple[int, int]) -> np.ndarray:
    """Pinhole camera for an uncalibrated frame (H, W): focal length = the longer side (about a 53 degree
    field of view, typical of video), principal point at the centre."""
    height, width = image_size
    focal = float(max(height, width))
    return np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], np.float64)


def rotation_to_pose(rotation: np.ndarray) -> HeadPose:
    """Euler angles (degrees) of a 3x3 rotation, in HeadPose's convention."""
    yaw = np.degrees(np.arcsin(np.clip(-rotation[2, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(rotation[2, 1], rotation[2, 2]))
    roll = np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0]))
    return HeadPose(float(yaw), float(pitch), float(roll))


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
    """Head pose from 68 landmarks by fitting a generic 3D face with solvePnP.

    A generic face gives angles good to a few degrees, which is enough to tell whether a swap kept
    the source's head pose: compare the two poses with `angle_difference`.
    """
    image_points = np.ascontiguousarray(np.asarray(landmarks, np.float64)[POSE_POINTS])
    camera = camera_matrix(image_size)
    # SQPnP finds the global optimum without an initial guess; a Levenberg-Marquardt pass polishes it.
    ok, rvec, tvec = cv2.solvePnP(FACE_MODEL_3D, image_points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("solvePnP found no head pose for these landmarks")
    rvec, tvec = cv2.solvePnPRefineLM(FACE_MODEL_3D, image_points, camera, None, rvec, tvec)
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation_to_pose(rotation)


def angle_difference(a: HeadPose, b: HeadPose) -> HeadPose:
    """Absolute per-axis difference of two poses in degrees, wrapped to [0, 180]."""
    delta = (a.as_array() - b.as_array() + 180.0) % 360.0 - 180.0
    yaw, pitch, roll = np.abs(delta)
    return HeadPose(float(yaw), float(pitch), float(roll))


# -- temporal stability -------------------------------------------------------------------------------

def temporal_change(previous: np.ndarray, current: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute change between two frames (0-255 levels, averaged over channels), weighted by
    `mask` (H, W) in [0, 1].

    Call it on face crops aligned with the *source's* landmarks in both frames: the alignment removes
    the head's own motion, and using the source's geometry for the swapped video too means that a
    swapped face jittering against the head shows up as change rather than being aligned away.
    """
    _check_pair(previous, current)
    scale = 255.0 if previous.dtype != np.uint8 else 1.0
    diff = np.abs(current.astype(np.float32) - previous.astype(np.float32)) * scale
    if diff.ndim == 3:
        diff = diff.mean(-1)
    weight = np.asarray(mask, np.float32)
    total = float(weight.sum())
    return float((diff * weight).sum() / total) if total > 0 else 0.0


def flicker_ratio(swapped_changes: np.ndarray, source_changes: np.ndarray) -> float:
    """How much more the swapped face changes frame to frame than the source face did (1.0 = as steady
    as the source, above 1 = flicker or jitter added by the swap).

    A ratio of sums, not a mean of per-frame ratios: a nearly still source frame pair would make a
    per-frame ratio blow up, while the sums weigh every frame by how much actually happened.
    """
    swapped_total = float(np.sum(swapped_changes))
    source_total = float(np.sum(source_changes))
    eps = 1e-6 * max(1, len(np.atleast_1d(source_changes)))
    return (swapped_total + eps) / (source_total + eps)


# -- seams ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeamScore:
    """Discontinuity the compositing added along the face-mask boundary (0 = none; lower is better).

    colour: local step in colour across the boundary (0-255 levels, RGB Euclidean);
    gradient: sharpness of that step, the steepest gradient across the band (levels per pixel).
    """

    colour: float
    gradient: float
    parts: dict[str, float] = field(default_factory=dict)  # colour step per part of the outline (SEAM_PARTS)


def _disc(radius: int) -> np.ndarray:
    size = 2 * max(1, radius) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def boundary_band(mask: np.ndarray, half_width: int) -> np.ndarray:
    """Boolean band of +-half_width px around the edge of a (soft) mask: dilate minus erode."""
    binary = (np.asarray(mask) > 0.5).astype(np.uint8)
    kernel = _disc(half_width)
    return cv2.dilate(binary, kernel) > cv2.erode(binary, kernel)


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Per-pixel gradient length (levels per pixel), the Euclidean norm over colour channels."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    squared = gx**2 + gy**2
    return np.sqrt(squared.sum(-1) if squared.ndim == 3 else squared)


def _local_mean(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean of `values` over the pixels where `weights` (H, W) is set (normalised
    convolution): the local colour of one side of a boundary, unmixed with the other side."""
    total = np.maximum(cv2.GaussianBlur(weights, (0, 0), sigma), 1e-6)
    if values.ndim == 3:
        return cv2.GaussianBlur(values * weights[..., None], (0, 0), sigma) / total[..., None]
    return cv2.GaussianBlur(values * weights, (0, 0), sigma) / total


# The landmark hull's outline in three parts (68-point indices), to say where a seam is: along the brows, down
# the sides of the face, or along the lower jaw and chin, where the new face's outline meets the neck.
SEAM_PARTS = {"brows": range(17, 27), "sides": (*range(0, 4), *range(13, 17)), "jaw": range(4, 13)}


def seam_score(swapped: np.ndarray, source: np.ndarray, mask: np.ndarray, half_width: int,
               landmarks: np.ndarray | None = None) -> SeamScore:
    """Colour and gradient discontinuity along the boundary of `mask`, relative to the source frame.

    Both are measured on the difference image (swapped - source): edges that were already in the
    source (jaw line, hair) cancel, and only what the compositing added remains, so the score is 0
    when nothing changed. At every boundary pixel, the colour step compares the local mean of the
    difference just inside and just outside the boundary (normalised convolution over a Gaussian of
    `half_width`), and the gradient is the steepest change within `half_width`: a hard edge and a
    soft blend can change the colour by the same amount, but only the hard edge is steep, and only
    it is seen as a seam. With the face's 68 `landmarks` (crop coordinates), the colour step is also given
    per part of the outline (`parts`, SEAM_PARTS), so a report can say where the seam is.
    """
    _check_pair(swapped, source)
    scale = 255.0 if swapped.dtype != np.uint8 else 1.0
    delta = (swapped.astype(np.float32) - source.astype(np.float32)) * scale
    inside = (np.asarray(mask) > 0.5).astype(np.float32)
    edge = boundary_band(mask, 1)
    if not edge.any():
        return SeamScore(0.0, 0.0)
    # Smoothing at a third of the band keeps codec noise and lost fine texture (a blurrier face) from
    # counting as edges; a seam is a step at every scale and survives it.
    steepness = _gradient_magnitude(cv2.GaussianBlur(delta, (0, 0), max(1.0, half_width / 3.0)))
    gradient = float(cv2.dilate(steepness, _disc(half_width))[edge].mean())

    sigma = max(1.0, half_width / 2.0)
    step = _local_mean(delta, inside, sigma) - _local_mean(delta, 1.0 - inside, sigma)
    step = np.sqrt((step**2).sum(-1)) if step.ndim == 3 else np.abs(step)
    return SeamScore(float(step[edge].mean()), gradient, {} if landmarks is None else _by_part(step, edge, landmarks))


def _by_part(step: np.ndarray, edge: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    """Mean colour step of the edge pixels nearest each part's outline landmarks (68 points, crop coordinates)."""
    ys, xs = np.nonzero(edge)
    points = np.asarray(landmarks, np.float64)[:27, :2]  # the outline: jaw 0-16, brows 17-26
    nearest = np.argmin((xs[:, None] - points[:, 0]) ** 2 + (ys[:, None] - points[:, 1]) ** 2, axis=1)
    values = step[ys, xs]
    parts = {name: np.isin(nearest, indices) for name, indices in SEAM_PARTS.items()}
    return {name: float(values[part].mean()) if part.any() else float("nan") for name, part in parts.items()}


# -- summaries -----------------------------------------------------------------------------------------

def finite_mean(values) -> float:
    """Mean of the finite values; NaN (without numpy's empty-slice warning) when there are none."""
    array = np.asarray(values, np.float64)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else float("nan")


@dataclass(frozen=True)
class Summary:
    """Mean, median and the mean of the worst 5% of frames (at least one frame) of a per-frame metric."""

    mean: float
    median: float
    worst5: float
    count: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "median": self.median, "worst5": self.worst5, "count": self.count}


def summarise(values: np.ndarray, higher_is_better: bool = False) -> Summary:
    """Summarise per-frame values, ignoring NaN (frames where the metric could not be measured).

    The worst 5% says how bad the bad frames get, which a mean hides: one flickering second in a
    minute barely moves the mean but is what a viewer notices.
    """
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Summary(float("nan"), float("nan"), float("nan"), 0)
    ordered = np.sort(values)
    if not higher_is_better:
        ordered = ordered[::-1]
    worst = ordered[: max(1, int(np.ceil(0.05 * values.size)))]
    return Summary(float(values.mean()), float(np.median(values)), float(worst.mean()), int(values.size))


# -- sharpness -----------------------------------------------------------------------------------------

def high_frequency_energy(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared Laplacian of the grey image inside `mask` (H, W), in levels^2: the fine detail that
    blur removes first (pores, lashes, teeth edges). Compare only crops of the same size and framing."""
    grey = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    if image.dtype != np.uint8:
        grey *= 255.0
    laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    weight = np.asarray(mask, np.float32)
    total = float(weight.sum())
    return float((laplacian**2 * weight).sum() / total) if total > 0 else float("nan")


def sharpness_ratio(images: list[np.ndarray], masks: list[np.ndarray], references: list[np.ndarray],
                    reference_masks: list[np.ndarray]) -> float:
    """High-frequency energy of generated faces over that of real faces, in aligned crops of the same size
    (1.0 = as sharp as the real faces; a blurred face scores well below 1). Means over each set, so one
    extreme face does not dominate a ratio."""
    if not images or not references:
        return float("nan")
    if images[0].shape != references[0].shape:
        raise ValueError(f"compare crops of the same size: {images[0].shape} vs {references[0].shape}")
    made = finite_mean([high_frequency_energy(i, m) for i, m in zip(images, masks, strict=True)])
    real = finite_mean([high_frequency_energy(i, m) for i, m in zip(references, reference_masks, strict=True)])
    return float(made / real) if real > 0 else float("nan")


# -- light: colour and brightness per face region ---------------------------------------------------------

# Skin regions as iBUG-68 polygons (image-left cheek first). The forehead has no landmarks: it is the band
# between the brows and the brows lifted by FOREHEAD_HEIGHT inter-ocular distances.
SKIN_REGIONS: dict[str, tuple[int, ...]] = {
    "cheek_left": (36, 41, 40, 31, 48, 4, 3, 2, 1),
    "cheek_right": (45, 46, 47, 35, 54, 12, 13, 14, 15),
    "chin": (58, 57, 56, 10, 9, 8, 7, 6),
}
FOREHEAD_HEIGHT = 0.3


def skin_region_masks(landmarks: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean masks of the forehead, cheeks and chin of a face (landmarks in the image's pixels)."""
    points = np.asarray(landmarks, np.float64)
    left, right = eye_centres(points)
    across = right - left
    up = np.array([across[1], -across[0]])  # perpendicular to the eye line, towards the top of the head
    brows = points[17:27]
    polygons = {"forehead": np.concatenate([brows, brows[::-1] + FOREHEAD_HEIGHT * up])}
    polygons.update({name: points[list(index)] for name, index in SKIN_REGIONS.items()})
    masks = {}
    for name, polygon in polygons.items():
        mask = np.zeros(shape, np.uint8)
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
        masks[name] = mask.astype(bool)
    return masks


def region_light_difference(swapped: np.ndarray, source: np.ndarray, landmarks: np.ndarray
                            ) -> dict[str, tuple[float, float]]:
    """Per skin region of the source face: (brightness step, colour step) of the swapped image against the
    source, in CIELAB levels (8-bit OpenCV scale): L difference (signed: > 0 = the pasted face is brighter)
    and the distance of the mean (a, b). 0 where colour matching did its job."""
    _check_pair(swapped, source)
    lab_swapped = cv2.cvtColor(np.asarray(swapped, np.uint8), cv2.COLOR_RGB2LAB).astype(np.float64)
    lab_source = cv2.cvtColor(np.asarray(source, np.uint8), cv2.COLOR_RGB2LAB).astype(np.float64)
    result = {}
    for name, mask in skin_region_masks(landmarks, source.shape[:2]).items():
        if not mask.any():
            result[name] = (float("nan"), float("nan"))
            continue
        delta = lab_swapped[mask].mean(0) - lab_source[mask].mean(0)
        result[name] = (float(delta[0]), float(np.hypot(delta[1], delta[2])))
    return result
