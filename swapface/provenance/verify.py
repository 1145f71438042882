"""Is this file a swapface output? Three independent pieces of evidence, each reported on its own:
the C2PA manifest (lost on re-encode, but signed), the metadata tag (lost on re-encode), and the
watermark (survives re-encoding, scaling and cropping)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from swapface.errors import InputError, SwapfaceError
from swapface.media import open_media, probe
from swapface.media.writer import SYNTHETIC_KEY, read_tags
from swapface.provenance.credentials import CREDENTIALS_TAG, SWAPFACE_ASSERTION, mime_type
from swapface.provenance.watermark import DEFAULT_KEY, MARK_BACKEND, WatermarkDetector

SAMPLE_FRAMES = 24  # frames spread over the clip that the watermark detector looks at
DETECT_SIDE = 640  # frames are searched for faces at about this size (landmarks at full size)


@dataclass
class ManifestEvidence:
    present: bool
    valid: bool = False  # the signature and the hashes check out (trust in the signer aside)
    trusted: bool = False  # the signer chains to a trust list the reader knows
    state: str = ""  # the C2PA reader's validation state (Valid, Trusted, Invalid)
    signer: str = ""
    issuer: str = ""
    actions: list[str] = field(default_factory=list)
    source_type: str = ""
    swapface: bool = False  # made by swapface (its assertion or its software agent)
    failures: list[str] = field(default_factory=list)


@dataclass
class WatermarkEvidence:
    found: bool
    z: float
    p_value: float  # bound on the chance that an unmarked clip scores this high
    faces: int
    frames: int


@dataclass
class Verdict:
    path: str
    swapface: bool  # any evidence that the file is a swapface output
    manifest: ManifestEvidence
    tag: str | None  # the synthetic metadata tag, when present
    credentials_tag: str | None  # how the output's credentials were recorded (or why none)
    watermark: WatermarkEvidence

    @property
    def summary(self) -> str:
        if not self.swapface:
            return "no evidence of swapface"
        found = [name for name, yes in (("signed Content Credentials", self.manifest.swapface and self.manifest.valid),
                                         ("tampered Content Credentials", self.manifest.swapface and
                                          not self.manifest.valid),
                                         ("synthetic tag", self.tag is not None),
                                         ("watermark", self.watermark.found)) if yes]
        return "swapface output: " + ", ".join(found)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "summary": self.summary}, indent=1)


def read_manifest(path: Path) -> ManifestEvidence:
    """The active C2PA manifest's claims and the reader's validation of them."""
    import c2pa

    if mime_type(path) is None:
        return ManifestEvidence(present=False)
    try:
        reader = c2pa.Reader(str(path))
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in text or "JumbfNotFound" in text or "no JUMBF" in text:
            return ManifestEvidence(present=False)
        return ManifestEvidence(present=True, state="Invalid", failures=[text.splitlines()[0][:200]])
    with reader:
        store = json.loads(reader.json())
        state = str(reader.get_validation_state() or "")
    manifest = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    actions, source_type, agents = [], "", []
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                actions.append(action.get("action", ""))
                source_type = action.get("digitalSourceType", source_type)
                agents.append((action.get("softwareAgent") or {}).get("name", ""))
    labels = {a.get("label") for a in manifest.get("assertions", [])}
    failures = [s.get("code", "") for s in store.get("validation_status", [])
                if s.get("code") != "signingCredential.untrusted"]
    signature = manifest.get("signature_info", {})
    return ManifestEvidence(
        present=True, valid=state in ("Valid", "Trusted"), trusted=state == "Trusted", state=state,
        signer=signature.get("common_name", ""), issuer=signature.get("issuer", ""), actions=actions,
        source_type=source_type, swapface=SWAPFACE_ASSERTION in labels or "swapface" in agents, failures=failures)


def _sample(path: Path, count: int) -> list[np.ndarray]:
    """Up to `count` frames spread evenly over the file (all frames of a short clip)."""
    info = probe(path)
    total = info.frame_count or count
    step = max(1, total // count)
    frames = []
    for i, frame in enumerate(open_media(path)):
        if i % step == 0:
            frames.append(frame.image)
            if len(frames) >= count:
                break
    return frames


def pool_watermark(path: str | Path, frames: int = SAMPLE_FRAMES, backend: str = MARK_BACKEND) -> WatermarkDetector:
    """The watermark evidence of the faces in `frames` frames spread over the file, ready to score."""
    from swapface.faces import make_backend

    detector = WatermarkDetector()
    faces = make_backend(backend, min_face=40)
    for image in _sample(Path(path), frames):
        detector.add_frame(image, faces, detect_scale=min(1.0, DETECT_SIDE / max(image.shape[:2])))
    return detector


def detect_watermark(path: str | Path, key: str = DEFAULT_KEY, frames: int = SAMPLE_FRAMES) -> WatermarkEvidence:
    """Is the mark of `key` in the file? Evidence pooled over `frames` frames spread over it."""
    score = pool_watermark(path, frames).score(key)
    return WatermarkEvidence(score.found, round(score.z, 2), score.p_value, score.faces, score.frames)


def verify_file(path: str | Path, key: str = DEFAULT_KEY, frames: int = SAMPLE_FRAMES) -> Verdict:
    """The verdict on one video or image; bad input (missing, unreadable) is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "is not a file")
    probe(path)  # an InputError for what cannot be decoded
    manifest = read_manifest(path)
    try:
        tags = read_tags(path)
    except (OSError, av.error.FFmpegError, ValueError):
        tags = {}
    try:
        watermark = detect_watermark(path, key, frames)
    except (cv2.error, av.error.FFmpegError) as exc:
        raise SwapfaceError(f"{path}: cannot read its frames ({exc.__class__.__name__})") from None
    tag = tags.get(SYNTHETIC_KEY)
    evidence = manifest.swapface or tag is not None or watermark.found
    return Verdict(str(path), evidence, manifest, tag, tags.get(CREDENTIALS_TAG), watermark)
