"""`swapface swap`: replace a person's face in a video, image or image folder with a trained model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from swapface.cli.common import console, user_errors
from swapface.cli.face_options import DetectorOption, SwapBackendOption, checked
from swapface.faceset.extract import reference_embedding
from swapface.media import MediaInfo, probe
from swapface.media.codecs import CODEC_CHOICES, CODECS
from swapface.media.sequences import colour_summary
from swapface.media.writer import VideoSettings, output_kind
from swapface.swap.blend import BLEND_MODES
from swapface.swap.chunked import swap_chunked
from swapface.swap.color import COLOR_MODES
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import SwapStats, swap_media

# Every option's default is the library's (one source); --device alone differs: the CLI picks CUDA itself.
DEFAULTS = SwapOptions()
STAGES = ("decode", "detect ahead", "track", "identify", "align", "crop", "model", "blend", "encode")


def swap_command(
    input: Annotated[Path, typer.Argument(
        help="Video, image, folder of images, or image sequence (shot.%04d.exr, shot.####.dpx, or a folder of "
             "numbered EXR/DPX/TIFF frames) showing the person to replace.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Model directory written by `swapface train`.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Video (.mp4, .mov, .mkv, .webm), image (.png), image sequence (out.%04d.exr: "
                               "frame numbers, depth, channels and metadata of the input's frames) or folder (no "
                               "extension: one PNG per frame, or the input sequence's files under their own "
                               "names). Written under a temporary name, renamed when done.")],
    direction: Annotated[str, typer.Option(
        help="a2b: the input shows identity A, render it as B; b2a: the other way.")] = DEFAULTS.direction,
    reference: Annotated[Path | None, typer.Option(
        help="Swap only this person (an image of them, a folder of images, or a faceset); others stay.")] = None,
    max_distance: Annotated[float, typer.Option(
        help="Largest identity distance to --reference that still counts as the same person.")] = DEFAULTS.max_distance,
    color: Annotated[str, typer.Option(
        help=f"Colour transfer inside the mask: {', '.join(COLOR_MODES)} (Reinhard in LAB).")] = DEFAULTS.color,
    mask: Annotated[str, typer.Option(
        help="Blend mask: learned (the model's), hull (from landmarks), both (their minimum), occlusion (visible "
             "face: leaves hands and objects in front of the face alone), learned+occlusion, hull+occlusion or all "
             "(the three).")] = DEFAULTS.mask,
    erode: Annotated[float, typer.Option(
        help="Shrink the mask by this many pixels of a face 256 px across (scales with the face; "
             "negative grows it).")] = DEFAULTS.erode,
    blur: Annotated[float, typer.Option(
        help="Feather the mask edge over this many pixels of a face 256 px across.", min=0)] = DEFAULTS.blur,
    blend: Annotated[str, typer.Option(
        help=f"Blending: {', '.join(BLEND_MODES)} (multi-band pyramid; gradient-domain; alpha).")] = (
        DEFAULTS.blend),
    sharpen: Annotated[float, typer.Option(
        help="Unsharp mask on the generated face before pasting (0 off; 0.5-1 brings a soft model's face "
             "closer to the footage's crispness).", min=0)] = DEFAULTS.sharpen,
    smooth: Annotated[float, typer.Option(
        help="Temporal smoothing of landmarks (One-Euro filter): 0 off, 1 default, higher steadier.",
        min=0)] = DEFAULTS.smooth,
    crf: Annotated[int, typer.Option(help="Video quality (lower is better; 18 is visually lossless for H.264).",
                                     min=0, max=63)] = DEFAULTS.video.crf,
    codec: Annotated[str, typer.Option(
        help=f"Video codec, one of {', '.join(CODEC_CHOICES)}: auto (VP9 for .webm, else H.264), same (like the "
             "input, where an encoder exists); "
             + "; ".join(f"{name}: {codec.summary}" for name, codec in CODECS.items())
             + ". Bit depth, chroma and alpha are kept where the codec allows; or an FFmpeg encoder name.")] = (
        DEFAULTS.video.codec),
    preset: Annotated[str, typer.Option(help="x264/x265 speed preset (ultrafast ... veryslow).")] = (
        DEFAULTS.video.preset),
    colorspace: Annotated[str | None, typer.Option(
        help="OCIO colour space of an image sequence's pixels (e.g. ACEScg, ACEScct, 'Linear Rec.709 (sRGB)'); "
             "default: what the file says, else scene-linear for EXR/float files and display RGB for integer "
             "files. The config is $OCIO, else OCIO's built-in ACES config. Faces are worked on in sRGB and "
             "written back in the input's space.")] = None,
    start: Annotated[float, typer.Option(
        help="Start of the time range, in seconds. Only the range is written: the output is a clip that "
             "starts at 0 (audio cut to match).", min=0)] = DEFAULTS.start,
    end: Annotated[float | None, typer.Option(help="End of the time range in seconds (default: the end).")] = None,
    patches: Annotated[Path | None, typer.Option(
        help="Also export, per face and frame, the generated face, its mask and the crop matrix into this "
             "folder (for re-compositing in other VFX tools).")] = None,
    backend: SwapBackendOption = None,
    detector: DetectorOption = None,
    min_face: Annotated[int | None, typer.Option(
        "--min-face", help="Smallest face in pixels that full-frame detection looks for (default: a tenth of "
                           "the frame's short side, at least 80). Smaller is slower.", min=8)] = None,
    detect_every: Annotated[int, typer.Option(
        help="Full-frame detection every Nth frame; faces are tracked in between (new faces appear within "
             "N frames).", min=1)] = DEFAULTS.detect_every,
    detect_workers: Annotated[int | None, typer.Option(
        help="Threads detecting those frames ahead of the tracker (default: cores - 1, up to 4; 0: in the "
             "tracker).", min=0)] = None,
    batch_size: Annotated[int, typer.Option(help="Faces per model call.", min=1)] = DEFAULTS.batch_size,
    device: Annotated[str, typer.Option(help="Torch device for the model: auto (cuda if present), cpu, cuda, "
                                             "cuda:1 ...")] = "auto",
    precision: Annotated[str, typer.Option(
        help="auto (bf16 on GPUs and CPUs that have it), bf16 or fp32.")] = DEFAULTS.precision,
    workers: Annotated[int, typer.Option(
        help="Swap the video in this many pieces at once, in local worker processes (cut at keyframes, "
             "joined without re-encoding).", min=1)] = 1,
    ray: Annotated[str | None, typer.Option(
        help="Run the pieces as tasks on this Ray cluster (an address, or 'auto'); needs swapface[cluster] "
             "and paths every node sees.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="With --workers/--ray: keep the pieces an interrupted run finished.")] = False,
    allow_no_faces: Annotated[bool, typer.Option(
        "--allow-no-faces", help="Write the output even when no face was swapped (by default that is an "
                                 "error and nothing is written).")] = DEFAULTS.allow_no_faces,
    sign_cert: Annotated[Path | None, typer.Option(
        help="PEM certificate chain (signer first) to sign the output's Content Credentials with "
             "(default: $SWAPFACE_SIGN_CERT, else a local identity made on first use in your config folder, "
             "which says it is not a trusted issuer).")] = None,
    sign_key: Annotated[Path | None, typer.Option(
        help="PEM private key (ES256) of --sign-cert (default: $SWAPFACE_SIGN_KEY).")] = None,
    no_credentials: Annotated[bool, typer.Option(
        "--no-credentials", help="Do not sign the output (C2PA); its metadata tag records that.")] = False,
) -> None:
    """Replace the face in INPUT with the model's other identity; write OUTPUT at the input's resolution,
    frame rate and timestamps, with its audio, labelled as synthetic in its metadata, signed with Content
    Credentials (C2PA) and with an invisible watermark in the face (`swapface verify` reads them)."""
    with user_errors():
        checked(backend, detector)
        # Built (and so checked) before the input is probed and the reference embedded, which take a while.
        options = SwapOptions(
            direction=direction, max_distance=max_distance, color=color, mask=mask,
            erode=erode, blur=blur, blend=blend, sharpen=sharpen, smooth=smooth, backend=backend, detector=detector,
            min_face=min_face,
            detect_every=detect_every, detect_workers=detect_workers, batch_size=batch_size, device=device,
            precision=precision, allow_no_faces=allow_no_faces,
            start=start, end=end, video=VideoSettings(codec=codec, crf=crf, preset=preset), patches=patches,
            colorspace=colorspace, credentials=not no_credentials, sign_cert=sign_cert, sign_key=sign_key)
        info = probe(input)
        if reference is not None:
            options = dataclasses.replace(options, reference=reference_embedding(reference))
        colour = colour_summary(input, colorspace)
        total = info.frame_count if start == 0 and end is None else None
        with Progress(TextColumn("[bold]swap[/]"), BarColumn(bar_width=None), MofNCompleteColumn(),
                      TextColumn("{task.fields[faces]} faces, {task.fields[rate]:.1f} frames/s"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("swap", total=total, faces=0, rate=0.0)

            def show(stats: SwapStats) -> None:
                bar.update(task, completed=stats.frames, faces=stats.faces_swapped, rate=stats.rate)

            if workers > 1 or ray is not None:
                stats = swap_chunked(input, model, output, options, workers, ray, resume, progress=show)
            else:
                stats = swap_media(input, model, output, options, progress=show)
        _summary(stats, output, colour, _video_summary(output, info, options.video))


def _video_summary(output: Path, info: MediaInfo, settings: VideoSettings) -> str | None:
    """The codec and pixel format a video output got (and why, where --codec same could not be kept)."""
    if output_kind(output) != "video":
        return None
    choice = settings.choose(output, info, info.width, info.height)
    return f"{choice.name} ({choice.encoder}, {choice.pix_fmt})" + (f"; {choice.note}" if choice.note else "")


def _summary(stats: SwapStats, output: Path, colour: str, video: str | None) -> None:
    table = Table(title=f"swapped -> {output}", show_header=False)
    table.add_row("colour", colour)
    if video is not None:
        table.add_row("video codec", video)
    table.add_row("frames written", str(stats.frames))
    table.add_row("frames with a swapped face", str(stats.frames_swapped))
    table.add_row("faces swapped", str(stats.faces_swapped))
    if stats.frames_reused:
        table.add_row("frames reused (--resume)", str(stats.frames_reused))
    table.add_row("time", f"{stats.seconds:.1f} s ({stats.rate:.2f} frames/s)")
    for stage in STAGES:
        if stage in stats.times.seconds and stats.frames:
            table.add_row(f"  {stage}", f"{stats.times.seconds[stage] / stats.frames * 1000:.1f} ms/frame")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this stage's sub-command to the app."""
    app.command("swap")(swap_command)
