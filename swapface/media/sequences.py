"""Image sequences (`shot.%04d.exr`, `shot.####.dpx`, or a folder of numbered EXR/DPX/TIFF frames),
read and written with OpenImageIO, keeping frame numbers, bit depth (8/10/16-bit, half and full float),
every channel (alpha and any others untouched) and each frame's metadata.

Each frame keeps its own pixels (`Frame.original`) next to the 8-bit display RGB the swap works on; the
writer replaces only the pixels the swap changed (see swapface.media.depth), so every other pixel comes
back bit-identical, in the file's own depth and colour space.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from swapface.atomic import _temp_prefix, remove_stale_temporaries
from swapface.errors import InputError, MediaWarning, SwapfaceError
from swapface.media.colour import OcioSpace, default_space, resolve
from swapface.media.depth import IntegerSpace, PixelSpace, restore, to_rgb8

# Formats a folder of numbered frames is read as a sequence in (PNG/JPEG folders stay folders of photos).
FOLDER_SEQUENCE_SUFFIXES = {".exr", ".dpx", ".cin", ".tif", ".tiff"}
# Film formats OpenCV does not read: a single file of these is a one-frame sequence, in and out.
SINGLE_FRAME_SUFFIXES = {".exr", ".dpx", ".cin"}
# Formats a pattern (shot.%04d.png) may name: so that a video called take#2.mp4 stays a video.
PATTERN_SUFFIXES = FOLDER_SEQUENCE_SUFFIXES | {".png", ".jpg", ".jpeg", ".tga", ".bmp", ".webp", ".sgi", ".hdr",
                                               ".jxl", ".psd"}
DEFAULT_FPS = Fraction(24)
_PLACEHOLDER = re.compile(r"%0?(\d*)d|#+|@+")


@dataclass(frozen=True)
class Sequence:
    """Numbered frames `folder/prefix<number>suffix`, the number zero-padded to `padding` digits; padding 0
    is one file, `folder/prefix suffix`, with no number in its name."""

    folder: Path
    prefix: str
    suffix: str
    padding: int
    numbers: tuple[int, ...] = ()

    def path(self, number: int) -> Path:
        if self.padding == 0:
            return self.folder / f"{self.prefix}{self.suffix}"
        return self.folder / f"{self.prefix}{number:0{self.padding}d}{self.suffix}"

    @property
    def pattern(self) -> str:
        if self.padding == 0:
            return str(self.path(0))
        return str(self.folder / f"{self.prefix}%0{self.padding}d{self.suffix}")

    def missing(self) -> list[int]:
        """Frame numbers absent between the first and the last."""
        present = set(self.numbers)
        return [n for n in range(self.numbers[0], self.numbers[-1] + 1) if n not in present] if self.numbers else []


def parse_pattern(path: str | Path) -> Sequence | None:
    """`shot.%04d.exr`, `shot.####.exr` or `shot.@@@@.exr` -> a Sequence with no frames listed yet (None for
    other names, and for a file that exists under that very name)."""
    path = Path(path)
    match = _PLACEHOLDER.search(path.name)
    if match is None or path.suffix.lower() not in PATTERN_SUFFIXES or path.is_file():
        return None
    padding = int(match.group(1) or 1) if match.group(0).startswith("%") else len(match.group(0))
    return Sequence(path.parent, path.name[:match.start()], path.name[match.end():], padding)


def output_sequence(path: str | Path) -> Sequence | None:
    """Where a sequence output goes: a pattern, or one EXR/DPX/Cineon file; None for other outputs."""
    path = Path(path)
    pattern = parse_pattern(path)
    if pattern is None and path.suffix.lower() in SINGLE_FRAME_SUFFIXES and _PLACEHOLDER.search(path.name) is None:
        return Sequence(path.parent, path.name[:-len(path.suffix)], path.suffix, 0)
    return pattern


def _single_file(path: Path) -> Sequence:
    """One EXR/DPX/Cineon file as a one-frame sequence (numbered as its name says, if it does)."""
    match = re.match(r"(.*?)(\d+)(\.[^.]+)$", path.name)
    if match is None:
        return Sequence(path.parent, path.name[:-len(path.suffix)], path.suffix, 0, (0,))
    prefix, digits, suffix = match.groups()
    return Sequence(path.parent, prefix, suffix, len(digits), (int(digits),))


def _numbered(folder: Path, prefix: str, suffix: str) -> dict[int, int]:
    """Frame number -> digits, for files `prefix<digits>suffix` in `folder`."""
    rule = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
    found = {}
    for name in (p.name for p in folder.iterdir() if p.is_file()):
        match = rule.match(name)
        if match:
            found[int(match.group(1))] = len(match.group(1))
    return found


def find_sequence(path: str | Path) -> Sequence | None:
    """The sequence `path` names (a pattern, a folder of numbered EXR/DPX/Cineon/TIFF frames, or one
    EXR/DPX/Cineon file), with its frame numbers; None when `path` is no sequence."""
    path = Path(path)
    pattern = parse_pattern(path)
    if pattern is not None:
        if not pattern.folder.is_dir():
            raise InputError(path, "no such folder")
        found = _numbered(pattern.folder, pattern.prefix, pattern.suffix)
        if not found:
            raise InputError(path, "no frames match this sequence pattern")
        return Sequence(pattern.folder, pattern.prefix, pattern.suffix, pattern.padding, tuple(sorted(found)))
    if path.is_file() and path.suffix.lower() in SINGLE_FRAME_SUFFIXES:
        return _single_file(path)
    if not path.is_dir():
        return None
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    frames = [p for p in files if p.suffix.lower() in FOLDER_SEQUENCE_SUFFIXES]
    if not frames or len(frames) != len([p for p in files if p.suffix.lower() in FOLDER_SEQUENCE_SUFFIXES | {
            ".png", ".jpg", ".jpeg"}]):
        return None
    match = re.match(r"(.*?)(\d+)(\.[^.]+)$", sorted(p.name for p in frames)[0])
    if match is None:
        return None
    prefix, digits, suffix = match.groups()
    found = _numbered(path, prefix, suffix)
    if len(found) != len(frames):
        raise InputError(path, f"folder mixes frames of several sequences (expected only {prefix}NNNN{suffix})")
    return Sequence(path, prefix, suffix, len(digits), tuple(sorted(found)))


def _oiio_error(fallback: str) -> str:
    """OpenImageIO's last error, on one line (its messages span several)."""
    lines = [line.strip(' "') for line in oiio.geterror().splitlines() if line.strip()]
    return lines[-1] if lines else fallback


def _open(path: Path) -> oiio.ImageInput:
    image = oiio.ImageInput.open(str(path))
    if image is None:
        raise InputError(path, f"not a readable image ({_oiio_error('unknown format').replace(str(path), '')})")
    return image


def read_spec(path: Path) -> oiio.ImageSpec:
    """A frame's header: size, channels, pixel type and metadata (pixels are not read)."""
    image = _open(path)
    try:
        return oiio.ImageSpec(image.spec())
    finally:
        image.close()


def read_pixels(path: Path) -> tuple[np.ndarray, oiio.ImageSpec]:
    """A frame's pixels as stored (HxWxC: uint8, uint16, float16 or float32) and its header."""
    image = _open(path)
    try:
        spec = oiio.ImageSpec(image.spec())
        pixels = image.read_image(oiio.TypeUnknown)
        if pixels is None:
            raise InputError(path, f"image is damaged ({_oiio_error('read failed')})")
    finally:
        image.close()
    pixels = np.asarray(pixels)
    if pixels.dtype.name not in ("uint8", "uint16", "float16", "float32"):
        raise InputError(path, f"pixel type {pixels.dtype.name} is not supported (8/16-bit integer, half or float)")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] < 3 or tuple(spec.channelnames[:3]) not in (("R", "G", "B"), ("r", "g", "b")):
        raise InputError(path, f"needs R, G, B channels first (it has {', '.join(spec.channelnames)})")
    return pixels, spec


def pixel_space(dtype: np.dtype, file_space: str | None, colorspace: str | None) -> PixelSpace:
    """How the file's pixels map to the display-referred working RGB: OCIO from `colorspace` (or the
    file's own, or scene-linear for float files); integer files named no space are display RGB as stored."""
    is_float = np.issubdtype(dtype, np.floating)
    scale = 1.0 if is_float else float(np.iinfo(dtype).max)
    source = resolve(colorspace) if colorspace else default_space(is_float, file_space)
    if source is None:
        return IntegerSpace(int(scale), dtype.name)
    return OcioSpace(source, dtype.name, scale)


def sequence_fps(spec: oiio.ImageSpec) -> Fraction:
    """Frame rate from the header (EXR's FramesPerSecond), else 24."""
    value = spec.getattribute("FramesPerSecond")
    if isinstance(value, tuple) and len(value) == 2 and value[1]:
        return Fraction(int(value[0]), int(value[1]))
    if isinstance(value, (int, float)) and value > 0:
        return Fraction(value).limit_denominator(1001)
    return DEFAULT_FPS


def sequence_timecode(spec: oiio.ImageSpec) -> str | None:
    """The frame's SMPTE timecode (EXR/DPX `smpte:TimeCode`: BCD digits, bit 6 of the frame byte = drop frame)."""
    value = spec.getattribute("smpte:TimeCode")
    if not isinstance(value, tuple) or not value:
        return None
    code = int(value[0])

    def bcd(shift: int, tens_mask: int) -> int:
        return ((code >> (shift + 4)) & tens_mask) * 10 + ((code >> shift) & 0xF)

    separator = ";" if code & 0x40 else ":"
    return f"{bcd(24, 0x3):02d}:{bcd(16, 0x7):02d}:{bcd(8, 0x7):02d}{separator}{bcd(0, 0x3):02d}"


def describe_pixels(pixels_dtype: np.dtype, channels: int) -> str:
    """An FFmpeg pixel format with the same depth and alpha (what a video output should keep)."""
    deep = pixels_dtype.itemsize > 1
    alpha = channels >= 4
    return {(False, False): "rgb24", (False, True): "rgba", (True, False): "rgb48le", (True, True): "rgba64le"}[
        (deep, alpha)]


def warn_gaps(sequence: Sequence) -> None:
    missing = sequence.missing()
    if missing:
        shown = ", ".join(str(n) for n in missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20
                                                          else "")
        warnings.warn(MediaWarning(f"{sequence.pattern}: frame{'s' if len(missing) > 1 else ''} {shown} "
                                   "missing from the sequence (the others keep their numbers)"), stacklevel=2)


# -- writing ----------------------------------------------------------------------------------------

class SequenceWriter:
    """Write frames as `pattern` (frame numbers kept from the input), each with its input frame's header:
    pixel type, bit depth, channels and metadata, plus the synthetic tag.

    Files go to a temporary folder next to the target and are moved into place only when every frame is
    written, so a failure leaves no frame under the final names.
    """

    def __init__(self, pattern: Sequence) -> None:
        self.pattern = pattern
        self.frames_written = 0
        self._stack = contextlib.ExitStack()
        self._tmp: Path | None = None
        self._names: list[str] = []

    def __enter__(self) -> SequenceWriter:
        target = Path(self.pattern.pattern)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Named as swapface.atomic names its temporaries, so a killed run's are removed by the next one.
        remove_stale_temporaries(target.parent, target.name)
        self._tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".part", dir=target.parent))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._tmp is not None
        try:
            if exc_type is None:
                if not self._names:
                    raise SwapfaceError(f"{self.pattern.pattern}: no frames to write")
                for name in self._names:
                    (self._tmp / name).replace(self.pattern.folder / name)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def write(self, frame, image: np.ndarray) -> None:
        from swapface.media.writer import synthetic_tags  # the writer module imports this one

        assert self._tmp is not None
        if self.pattern.padding == 0 and self._names:
            raise SwapfaceError(f"{self.pattern.pattern}: the input has several frames; name the output with a "
                                "frame number pattern (out.%04d.exr) or a folder")
        number = frame.number if frame.number is not None else frame.index
        name = self.pattern.path(number).name
        source = Path(frame.source)
        if frame.original is not None and frame.space is not None and frame.untouched is not None:
            pixels = restore(frame.original, frame.space, image, frame.untouched)
            spec = read_spec(source)
        else:
            pixels = image
            spec = oiio.ImageSpec(image.shape[1], image.shape[0], 3, "uint8")
        for key, value in synthetic_tags().items():
            spec.attribute(key, value)
        spec.attribute("ImageDescription", synthetic_tags()["comment"])
        target = self._tmp / name
        output = oiio.ImageOutput.create(str(target))
        if output is None or not output.open(str(target), spec) or not output.write_image(np.ascontiguousarray(pixels)):
            raise SwapfaceError(f"{self.pattern.folder / name}: cannot write frame ({_oiio_error('write failed')})")
        output.close()
        self._names.append(name)
        self.frames_written += 1


def frame_pixels(path: Path, colorspace: str | None) -> tuple[np.ndarray, np.ndarray, PixelSpace]:
    """One frame: (8-bit display RGB, the pixels as stored, their space)."""
    pixels, spec = read_pixels(path)
    space = pixel_space(pixels.dtype, spec.getattribute("oiio:ColorSpace"), colorspace)
    return to_rgb8(pixels, space), pixels, space


def colour_summary(path: str | Path, colorspace: str | None) -> str:
    """For the swap and extract summaries: which colour spaces the input's pixels went through."""
    from swapface.media.colour import config_name, working_space

    sequence = find_sequence(path)
    if sequence is None:
        if colorspace:
            raise SwapfaceError(f"{path}: --colorspace applies to image sequences (video and photos are "
                                "display-referred RGB)")
        return "display-referred RGB as stored (no conversion)"
    spec = read_spec(sequence.path(sequence.numbers[0]))
    dtype = np.dtype({"half": np.float16, "float": np.float32, "double": np.float64, "uint8": np.uint8}.get(
        str(spec.format), np.uint16))
    space = pixel_space(dtype, spec.getattribute("oiio:ColorSpace"), colorspace)
    if isinstance(space, OcioSpace):
        return (f"{space.source} -> {working_space()} for the face work -> back to {space.source} "
                f"(OCIO config: {config_name()})")
    return "display-referred RGB as stored (no conversion)"
