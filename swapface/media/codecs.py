"""Output codecs: the one list of `--codec` choices, and the pixel format each gets for a given input.

The rule is "keep what the input has where the codec allows": bit depth, chroma subsampling and alpha.
A 10-bit 4:2:2 ProRes input written as HEVC stays 10-bit 4:2:2; written as ProRes 422 HQ it stays
10-bit 4:2:2; an 8-bit 4:2:0 phone clip written as ProRes 4444 becomes 10-bit 4:4:4 (nothing is lost).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from swapface.errors import InputError, SwapfaceError
from swapface.media.scheduling import keep_scheduling


@dataclass(frozen=True)
class PixelShape:
    """What a pixel format holds: bits per component, chroma subsampling, alpha, RGB or YUV."""

    depth: int
    chroma: str  # "444", "422", "420" (others: "411", "440", "410"; grey counts as "444")
    alpha: bool
    rgb: bool

    @property
    def chroma_rank(self) -> int:
        """How much colour resolution: 444 > 422/440 > 420/411 > 410."""
        return {"444": 3, "422": 2, "440": 2, "420": 1, "411": 1}.get(self.chroma, 0)


def pixel_shape(pix_fmt: str) -> PixelShape:
    """Describe an FFmpeg pixel format (from FFmpeg's own pixel format descriptor)."""
    fmt = av.VideoFormat(pix_fmt, 16, 16)
    components = fmt.components
    colour = [c for c in components if not c.is_alpha]
    depth = max(c.bits for c in colour)
    chroma = "444"
    if not fmt.is_rgb and len(colour) == 3:
        chroma = {(16, 16): "444", (8, 16): "422", (8, 8): "420", (16, 8): "440", (4, 16): "411",
                  (4, 4): "410"}.get((colour[1].width, colour[1].height), "420")
    return PixelShape(depth, chroma, any(c.is_alpha for c in components), fmt.is_rgb)


@dataclass(frozen=True)
class OutputCodec:
    """One `--codec` choice: the FFmpeg encoder, what it keeps, and how `--crf` maps onto it."""

    encoder: str
    summary: str
    formats: tuple[str, ...] | None = None  # pixel formats allowed (None: the encoder's own list)
    quality: str = "crf"  # "crf" (x264, x265, VP9, AV1), "bitrate" (MPEG-2/4, MJPEG), "profile" (fixed)
    options: tuple[tuple[str, str], ...] = ()


CODECS: dict[str, OutputCodec] = {
    "h264": OutputCodec("libx264", "H.264, 8 or 10-bit, 4:2:0/4:2:2/4:4:4 as the input"),
    "hevc": OutputCodec("libx265", "HEVC, 8/10/12-bit, 4:2:0/4:2:2/4:4:4 as the input"),
    "prores": OutputCodec("prores_ks", "ProRes 422 HQ, 10-bit 4:2:2", ("yuv422p10le",), "profile",
                          (("profile", "3"), ("vendor", "apl0"))),
    "prores4444": OutputCodec("prores_ks", "ProRes 4444, 10-bit 4:4:4, alpha kept",
                              ("yuv444p10le", "yuva444p10le"), "profile", (("profile", "4"), ("vendor", "apl0"))),
    "dnxhr": OutputCodec("dnxhd", "DNxHR: HQ (8-bit 4:2:2), HQX (10-bit 4:2:2) or 444, by the input",
                         ("yuv422p", "yuv422p10le", "yuv444p10le"), "profile"),
    "ffv1": OutputCodec("ffv1", "FFV1, lossless, any depth, alpha kept", quality="profile",
                        options=(("level", "3"), ("slicecrc", "1"))),
    "vp9": OutputCodec("libvpx-vp9", "VP9 (WebM)"),
    "av1": OutputCodec("libsvtav1", "AV1 (SVT-AV1), 8 or 10-bit 4:2:0"),
    "mpeg4": OutputCodec("mpeg4", "MPEG-4 Part 2 (DivX/Xvid-era archive format)", quality="bitrate"),
    "mpeg2": OutputCodec("mpeg2video", "MPEG-2 video, 4:2:0/4:2:2", quality="bitrate"),
    "mjpeg": OutputCodec("mjpeg", "Motion JPEG", ("yuvj420p", "yuvj422p", "yuvj444p"), "bitrate"),
}
ALIASES = {"h265": "hevc", "x264": "h264", "x265": "hevc", "prores422hq": "prores", "dnxhd": "dnxhr"}
CODEC_CHOICES = ("auto", "same", *CODECS)
# `--codec same`: the choice that makes what the input's decoder reads (where an encoder exists).
SAME_AS_INPUT = {"h264": "h264", "hevc": "hevc", "prores": "prores", "dnxhd": "dnxhr", "ffv1": "ffv1",
                 "vp9": "vp9", "av1": "av1", "libdav1d": "av1", "mpeg4": "mpeg4", "mpeg2video": "mpeg2",
                 "mjpeg": "mjpeg"}
DNXHR_PROFILES = {"yuv422p": "dnxhr_hq", "yuv422p10le": "dnxhr_hqx", "yuv444p10le": "dnxhr_444"}


@dataclass(frozen=True)
class EncoderChoice:
    """What the writer opens: encoder, pixel format, encoder options, and the name the user chose."""

    name: str
    encoder: str
    pix_fmt: str
    options: dict[str, str]
    note: str | None = None  # said to the user when `same` could not be honoured


def resolve_name(codec: str, suffix: str, input_codec: str | None, input_pix_fmt: str | None) -> tuple[str, str | None]:
    """The CODECS key for a `--codec` value (or an FFmpeg encoder name, passed through), and a note."""
    codec = ALIASES.get(codec, codec)
    default = "vp9" if suffix == ".webm" else "h264"
    if codec == "auto":
        return default, None
    if codec == "same":
        name = SAME_AS_INPUT.get(input_codec or "")
        if name == "prores" and input_pix_fmt and pixel_shape(input_pix_fmt).chroma == "444":
            name = "prores4444"
        if name is None:
            return default, f"no encoder makes the input's {input_codec}: writing {default}"
        return name, None
    return codec, None


def _candidates(codec: OutputCodec | None, encoder: str) -> list[str]:
    if codec is not None and codec.formats is not None:
        return list(codec.formats)
    try:
        formats = [f.name for f in av.codec.Codec(encoder, "w").video_formats or ()]
    except (av.error.FFmpegError, ValueError):
        raise SwapfaceError(f"codec {encoder!r} is not available in this FFmpeg") from None
    usable = [f for f in formats if f.startswith(("yuv", "gbr", "gray", "rgb", "bgr")) and "j" not in f[:4]]
    return usable or formats


def choose_format(candidates: list[str], want: PixelShape, width: int, height: int) -> str:
    """The candidate pixel format that keeps most of `want`: never less depth, chroma or alpha where a
    candidate keeps them; then the closest (no needless growth); YUV unless the input is RGB. Odd sizes
    rule out subsampled chroma where a full-chroma candidate exists."""
    def fits(name: str) -> bool:
        shape = pixel_shape(name)
        return not ((width % 2 and shape.chroma in ("420", "422", "411", "410")) or
                    (height % 2 and shape.chroma in ("420", "440", "410")))

    usable = [c for c in candidates if fits(c)] or candidates

    def cost(name: str) -> tuple:
        s = pixel_shape(name)
        return (s.depth < want.depth, s.chroma_rank < want.chroma_rank, want.alpha and not s.alpha,
                s.alpha and not want.alpha, abs(s.depth - want.depth), abs(s.chroma_rank - want.chroma_rank),
                s.rgb != want.rgb, name.startswith("gray"), not name.startswith("yuv"))

    return min(usable, key=cost)


def choose_encoder(codec: str, suffix: str, width: int, height: int, input_codec: str | None = None,
                   input_pix_fmt: str | None = None, crf: int = 18, preset: str = "veryfast",
                   rate: Fraction | None = None) -> EncoderChoice:
    """The encoder, pixel format and options for writing a `width` x `height` video as `codec`."""
    name, note = resolve_name(codec, suffix, input_codec, input_pix_fmt)
    spec = CODECS.get(name)
    encoder = spec.encoder if spec is not None else name
    want = pixel_shape(input_pix_fmt) if input_pix_fmt else PixelShape(8, "420", False, False)
    pix_fmt = choose_format(_candidates(spec, encoder), want, width, height)
    options = dict(spec.options) if spec is not None else {}
    quality = spec.quality if spec is not None else "crf"
    if encoder in ("libx264", "libx265"):
        options.update(crf=str(crf), preset=preset)
        if encoder == "libx265":
            options["x265-params"] = "log-level=error"
    elif quality == "crf" and encoder in ("libvpx-vp9", "libsvtav1"):
        options.update(crf=str(crf), b="0")
    elif quality == "bitrate":
        # Intra/inter codecs without a CRF: a generous bit rate (about 1.5 bits per pixel at --crf 18).
        bits = width * height * float(rate or 25) * 1.5 * 2 ** ((18 - crf) / 6)
        options.update(b=str(int(bits)))
    if encoder == "dnxhd":
        options["profile"] = DNXHR_PROFILES[pix_fmt]
    return EncoderChoice(name, encoder, pix_fmt, options, note)


def check_container_takes(path: str | Path, choice: EncoderChoice, width: int, height: int) -> None:
    """Refuse, before any work, a codec the container cannot hold (ProRes in .mp4) or that cannot encode
    this size (DNxHR below 256 px): the encoder is opened and the container's header written, in memory
    (FFmpeg offers no other query through PyAV)."""
    path = Path(path)
    try:
        with av.open(io.BytesIO(), "w", format=_format_name(path)) as container:
            stream = container.add_stream(choice.encoder, rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, choice.pix_fmt
            stream.options = dict(choice.options)
            with keep_scheduling():  # SVT-AV1 makes the threads it opens with real-time
                stream.codec_context.open()
            container.start_encoding()
    except (av.error.FFmpegError, ValueError) as exc:
        raise InputError(path, f"cannot write {choice.name} ({choice.encoder}, {choice.pix_fmt}) video of "
                               f"{width}x{height} in a {path.suffix} file ({exc.__class__.__name__}): "
                               "choose another --codec or container") from None


def _format_name(path: Path) -> str:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mxf": "mxf", ".avi": "avi", ".ts": "mpegts",
            ".m4v": "mp4"}.get(path.suffix.lower(), "mp4")
