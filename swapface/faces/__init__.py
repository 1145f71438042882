"""Face detection, landmarks, identity embeddings, alignment and masks (building blocks, no I/O)."""

from swapface.faces.align import AlignSpec, alignment_matrix, crop_face, invert, transform_points
from swapface.faces.backend import DetectedFace, FaceBackend


def make_backend(name: str = "dlib", **options) -> FaceBackend:
    """Create a face backend by name; options go to its constructor (e.g. detector, min_face)."""
    if name == "dlib":
        from swapface.faces.dlib_backend import DlibBackend

        return DlibBackend(**options)
    raise ValueError(f"unknown face backend {name!r} (available: dlib)")


__all__ = [
    "AlignSpec", "DetectedFace", "FaceBackend", "alignment_matrix", "crop_face", "invert",
    "make_backend", "transform_points",
]
