"""Face detection, landmarks, identity embeddings, alignment and masks (building blocks, no I/O)."""

from swapface.faces.align import AlignSpec, alignment_matrix, crop_face, invert, transform_points
from swapface.faces.backend import DetectedFace, FaceBackend

# The one list of face backends, and each one's detectors (the first is its default). Every stage
# builds its backends with make_backend and offers BACKENDS as its --backend choices.
BACKENDS: dict[str, tuple[str, ...]] = {"mediapipe": ("full", "short"), "dlib": ("hog", "cnn")}
# MediaPipe measured better than dlib on every count (docs/benchmarks.md, "Face backends"): more faces
# found in the stills and the crowd clip, half the cost per 1080p frame, 15-50% less alignment jitter.
DEFAULT_BACKEND = "mediapipe"
LEGACY_BACKEND = "dlib"  # what made the facesets and models that predate the choice (they record none)
SCHEMES = {"dlib": "dlib68", "mediapipe": "mediapipe478"}  # landmark scheme each backend's facesets carry


def check_backend(name: str, detector: str | None = None) -> None:
    """Raise ValueError (one line, naming the choices) for an unknown backend or detector."""
    if name not in BACKENDS:
        raise ValueError(f"unknown face backend {name!r} (available: {', '.join(BACKENDS)})")
    if detector is not None and detector not in BACKENDS[name]:
        raise ValueError(f"the {name} backend's detector must be one of {', '.join(BACKENDS[name])}, got {detector!r}")


def make_backend(name: str = DEFAULT_BACKEND, detector: str | None = None, **options) -> FaceBackend:
    """Create a face backend by name; `detector` None picks the backend's default; other options go to
    its constructor (min_face, min_score)."""
    check_backend(name, detector)
    detector = detector or BACKENDS[name][0]
    options = {key: value for key, value in options.items() if value is not None}  # None: the default
    if name == "mediapipe":
        from swapface.faces.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(detector=detector, **options)
    from swapface.faces.dlib_backend import DlibBackend

    return DlibBackend(detector=detector, **options)


__all__ = [
    "AlignSpec", "BACKENDS", "DEFAULT_BACKEND", "LEGACY_BACKEND", "DetectedFace", "FaceBackend", "SCHEMES",
    "alignment_matrix", "check_backend", "crop_face", "invert", "make_backend", "transform_points",
]
