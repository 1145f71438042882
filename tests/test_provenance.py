"""Provenance end to end on real footage: a swap is signed (C2PA) and watermarked; the watermark
survives CRF 28 at 720p and 480p and a 10% crop when the manifest is gone; tampering shows; unswapped
footage gives no evidence."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data
from cryptography import x509
from typer.testing import CliRunner

from swapface.cli.main import app
from swapface.demo import bundled_model
from swapface.faces import AlignSpec, alignment_matrix, make_backend
from swapface.faces.masks import dense_face_mask
from swapface.media.images import read_rgb
from swapface.media.writer import read_tags
from swapface.provenance.credentials import COMPOSITE_SOURCE_TYPE, CREDENTIALS_TAG, local_identity
from swapface.provenance.verify import verify_file
from swapface.provenance.watermark import MARK_BACKEND, KeptPixels, WatermarkDetector, embed, false_positive_bound
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import swap_media

from .conftest import STILLS, VIDEOS

runner = CliRunner()
FRAMES = 20


def _write(path: Path, images: list[np.ndarray], crf: int, rate: int = 30) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _reencode(src: Path, dst: Path, height: int | None = None, crop: float = 0.0, gain: float = 1.0) -> Path:
    """What an upload does: crop, scale (area), a brightness change, H.264 at CRF 28; no metadata kept."""
    images = []
    for image in _frames(src):
        h, w = image.shape[:2]
        dy, dx = int(h * crop / 2), int(w * crop / 2)
        image = image[dy:h - dy, dx:w - dx]
        if height is not None:
            width = round(image.shape[1] * height / image.shape[0] / 2) * 2
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        images.append(np.clip(image.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8))
    _write(dst, images, crf=28)
    return dst


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lp_d3's first frames, upscaled to 1080 x 1080, swapped with the bundled demo model."""
    folder = tmp_path_factory.mktemp("provenance")
    with av.open(str(VIDEOS / "lp_d3.mp4")) as container:
        images = [cv2.resize(f.to_ndarray(format="rgb24"), (1080, 1080), interpolation=cv2.INTER_CUBIC)
                  for _, f in zip(range(FRAMES), container.decode(video=0), strict=False)]
    source = folder / "source.mp4"
    _write(source, images, crf=16)
    out = folder / "swapped.mp4"
    stats = swap_media(source, bundled_model(), out, SwapOptions(detect_workers=0))
    assert stats.faces_swapped == FRAMES
    return out


@pytest.mark.slow
def test_swap_is_signed_and_verifies(swapped: Path) -> None:
    verdict = verify_file(swapped)
    m = verdict.manifest
    assert verdict.swapface and m.present and m.valid and m.swapface
    assert m.actions[:2] == ["c2pa.opened", "c2pa.edited"] and m.source_type == COMPOSITE_SOURCE_TYPE
    assert "NOT A TRUSTED ISSUER" in m.issuer and not m.trusted
    assert verdict.tag is not None and verdict.credentials_tag == "c2pa"
    assert verdict.watermark.found and verdict.watermark.faces >= FRAMES // 2
    assert not list(swapped.parent.glob(".swapped*")), "a temporary file was left behind"
    result = runner.invoke(app, ["verify", str(swapped), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["manifest"]["valid"] is True


@pytest.mark.slow
@pytest.mark.parametrize("height,crop,gain", [(720, 0.0, 1.0), (480, 0.0, 1.0), (None, 0.1, 1.0), (480, 0.0, 1.15)],
                         ids=["720p", "480p", "crop10", "480p-brighter"])
def test_watermark_survives_reencoding(swapped: Path, tmp_path: Path, height: int | None, crop: float,
                                       gain: float) -> None:
    copy = _reencode(swapped, tmp_path / "upload.mp4", height, crop, gain)
    verdict = verify_file(copy)
    assert not verdict.manifest.present and verdict.tag is None  # metadata is gone...
    assert verdict.watermark.found, verdict.watermark  # ...the mark is not
    assert verdict.swapface


@pytest.mark.slow
def test_tampered_file_reports_manifest_invalid(swapped: Path, tmp_path: Path) -> None:
    data = bytearray(swapped.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 64):  # inside the video data
        data[offset] ^= 0x5A
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    verdict = verify_file(tampered)
    assert verdict.manifest.present and not verdict.manifest.valid
    assert verdict.manifest.failures
    assert verdict.swapface  # still a swapface output (tag, watermark): but its credentials do not hold


@pytest.mark.slow
def test_unswapped_footage_gives_no_evidence() -> None:
    files = sorted(VIDEOS.glob("*.mp4")) + sorted(p for p in STILLS.iterdir() if p.suffix != ".md")
    assert len(files) > 40, "real face data missing"
    for path in files:
        verdict = verify_file(path, frames=3)
        assert not verdict.swapface, (path, verdict.summary, verdict.watermark)
        assert verdict.watermark.p_value > 1e-6


def test_still_swap_signed_or_recorded_off(tmp_path: Path) -> None:
    """A PNG output is signed; with credentials off its tag says so; the local identity says it is untrusted."""
    still = STILLS / "mpl_grace_hopper.jpg"
    signed, unsigned = tmp_path / "signed.png", tmp_path / "unsigned.png"
    swap_media(still, bundled_model(), signed, SwapOptions(detect_workers=0))
    swap_media(still, bundled_model(), unsigned, SwapOptions(detect_workers=0, credentials=False, watermark=None))
    verdict = verify_file(signed)
    assert verdict.manifest.valid and verdict.manifest.swapface and verdict.credentials_tag == "c2pa"
    off = verify_file(unsigned)
    assert not off.manifest.present and "--no-credentials" in read_tags(unsigned)[CREDENTIALS_TAG]
    assert off.swapface  # the synthetic tag still says what it is
    certificate = x509.load_pem_x509_certificate(local_identity().chain_pem)
    assert "NOT A TRUSTED ISSUER" in certificate.subject.rfc4514_string()


def test_verify_exit_codes(tmp_path: Path) -> None:
    assert runner.invoke(app, ["verify", str(tmp_path / "missing.mp4")]).exit_code == 2
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    assert runner.invoke(app, ["verify", str(tmp_path / "junk.mp4")]).exit_code == 2
    assert runner.invoke(app, ["verify", str(STILLS / "lp_d9.jpg")]).exit_code == 1
    assert false_positive_bound(5.3) < 1e-6


def test_mark_leaves_the_kept_occluder_alone() -> None:
    """The pixels a swap keeps (an object in front of the face) get no mark, however textured; the rest
    of the face does, and the mark is still found in that one frame."""
    image = read_rgb(STILLS / "df_damon_1.jpg")
    backend = make_backend(MARK_BACKEND)
    face = max(backend.detect(image), key=lambda f: f.size)
    spec = AlignSpec(128, "whole")
    matrix = alignment_matrix(face.landmarks, spec)
    ball = np.zeros((spec.size, spec.size), np.float32)
    cv2.circle(ball, (64, 100), 24, 1.0, -1)  # over mouth and chin, as a microphone would be
    texture = cv2.resize(skimage.data.coffee(), image.shape[1::-1])  # the mark is strongest on texture
    covered = cv2.warpAffine(ball, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP) > 0.999
    image[covered] = texture[covered]
    marked = image.copy()
    embed(marked, face.landmarks, kept=KeptPixels(ball, matrix))
    changed = (marked != image).any(2)
    assert covered.sum() > 1000 and not changed[covered].any()
    face_area = dense_face_mask(face.dense, image.shape[:2]) > 0.5
    assert changed[face_area & ~covered].mean() > 0.5
    detector = WatermarkDetector()
    detector.add_frame(marked, backend)
    assert detector.score().found
