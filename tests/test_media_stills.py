"""Stills as people give them (grey, 16-bit, alpha, palette, CMYK, rotated by EXIF, damaged), through the one
reader: the same 8-bit RGB pixels whatever the file's kind, and a damaged file reported in one line with
nothing written to stderr by the decoders underneath."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from swapface.errors import InputError
from swapface.media.images import read_rgb

from .conftest import STILLS
from .video_helpers import write_damaged_jpeg

STILL = STILLS / "df_jolie_2.jpg"


def _save(path: Path, rgb: np.ndarray, kind: str) -> np.ndarray:
    """Write `rgb` as one kind of still; return the RGB a reader should give back."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if kind == "grey-16bit-png":
        cv2.imwrite(str(path), grey.astype(np.uint16) * 257)
        return np.repeat(grey[..., None], 3, axis=2)
    if kind == "rgb-16bit-tiff":
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
        return rgb
    if kind == "rgba-png":
        Image.fromarray(np.dstack([rgb, np.full(grey.shape, 90, np.uint8)])).save(path)
        return rgb
    if kind == "palette-png":
        palette = Image.fromarray(rgb).quantize(64)
        palette.save(path)
        return np.array(palette.convert("RGB"))
    if kind == "exif-rotated-jpeg":
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 clockwise to display", as phones write it
        Image.fromarray(rgb).save(path, quality=95, exif=exif)
        return np.rot90(rgb, k=-1)
    if kind == "cmyk-jpeg":
        Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
        return rgb
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["grey-16bit-png", "rgb-16bit-tiff", "rgba-png", "palette-png",
                                  "exif-rotated-jpeg", "cmyk-jpeg"])
def test_every_kind_of_still_reads_as_the_same_rgb(tmp_path: Path, kind: str) -> None:
    rgb = read_rgb(STILL)
    path = tmp_path / f"still.{'tif' if 'tiff' in kind else 'jpg' if 'jpeg' in kind else 'png'}"
    expected = _save(path, rgb, kind)
    image = read_rgb(path)
    assert image.dtype == np.uint8 and image.shape == expected.shape and image.flags.writeable
    lossy = 3.0 if "jpeg" in kind else 0.5
    assert np.abs(image.astype(np.int16) - expected).mean() < lossy


def test_stray_bytes_in_a_jpeg_are_skipped_without_a_word_on_stderr(tmp_path: Path, capfd) -> None:
    path = write_damaged_jpeg(tmp_path / "stray.jpg", STILL, cut=False)
    cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    assert "Corrupt JPEG data" in capfd.readouterr().err  # the file does make libjpeg talk
    assert np.array_equal(read_rgb(path), read_rgb(STILL))
    assert capfd.readouterr().err == ""


def test_a_cut_jpeg_is_one_error_and_nothing_on_stderr(tmp_path: Path, capfd) -> None:
    path = write_damaged_jpeg(tmp_path / "cut.jpg", STILL, cut=True)
    with pytest.raises(InputError, match=f"{path}: not a readable image"):
        read_rgb(path)
    assert capfd.readouterr().err == ""
