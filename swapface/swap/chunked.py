"""The swap of one video spread over many workers: local processes, or Ray tasks on a cluster.

The video is cut at keyframes into pieces of about equal length. Each worker builds the SwapPipeline,
seeks to a little before its piece (warm-up frames, tracked but not written, so tracking and landmark
smoothing are already settled at the piece's first frame: no visible seam), swaps and encodes the
piece to its own file, complete only once renamed into place. The pieces are then joined without a
second encode, with the input's audio and timestamps. A worker that fails or is lost has only its
piece redone; `resume` keeps the pieces a killed run had finished. Inputs, outputs and the piece folder
must lie on a path every worker sees (a shared file system, on a cluster).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from swapface.atomic import atomic_write_text
from swapface.cluster import cluster_gpus, connection
from swapface.errors import InputError, SwapfaceError
from swapface.media import probe
from swapface.media.chunks import VideoIndex, frames_from, index_video, join_pieces
from swapface.media.reader import MediaInfo
from swapface.media.writer import VideoWriter
from swapface.provenance.credentials import prepare_signing
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import SwapPipeline, SwapStats, check_output, check_swapped_any
from swapface.workers import process_pool

WARMUP_SECONDS = 0.5  # tracked, unwritten frames before a piece: measured, landmark smoothing had settled
# (a lossless swap in pieces matched the one-piece swap exactly) within 15 frames of 30 fps footage
PIECES_PER_WORKER = 4  # more pieces than workers: balanced load, and less to redo after a failure
PLAN_FILE = "plan.json"
LOCAL_RETRIES = 2  # times a piece is redone after its worker process died


@dataclass(frozen=True)
class Piece:
    """Frames `first` to `end - 1` are written; decoding starts at `warmup` (a keyframe-schedule
    multiple, so detection falls on the same frames as in a one-piece run)."""

    number: int
    warmup: int
    first: int
    end: int


@dataclass(frozen=True)
class PieceTask:
    """Everything a worker needs, picklable, with paths every worker can see."""

    input: str
    model_dir: str
    options: SwapOptions
    info: MediaInfo
    index: VideoIndex
    piece: Piece
    path: str


@dataclass(frozen=True)
class PieceResult:
    number: int
    frames: int
    frames_swapped: int
    faces_swapped: int
    seconds: float


def plan_pieces(index: VideoIndex, pieces: int, first: int, end: int, detect_every: int, warmup: int) -> list[Piece]:
    """Cut frames [first, end) into up to `pieces` stretches starting at keyframes."""
    cuts = [first]
    keyframes = [k for k in index.keyframes if first < k < end]
    for k in range(1, pieces):
        if not keyframes:
            break
        target = first + round(k * (end - first) / pieces)
        cut = min(keyframes, key=lambda frame: abs(frame - target))
        if cut > cuts[-1]:
            cuts.append(cut)
    cuts.append(end)
    plan = []
    for number, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        start = max(first, a - warmup) if a > first else a
        start -= (start - first) % detect_every  # keyframe schedule counted from the range's first frame
        plan.append(Piece(number, start, a, b))
    return plan


def swap_piece(task: PieceTask) -> PieceResult:
    """Worker side: swap one piece into its own file (complete only once renamed into place)."""
    piece, index = task.piece, task.index
    pipeline = SwapPipeline.from_model_dir(task.model_dir, task.options)
    with VideoWriter(task.path, task.info, task.options.video, audio=False) as writer:
        stats = pipeline(frames_from(task.input, index, piece.warmup, piece.end), writer.write,
                         frame_size=(task.info.width, task.info.height), write_from=index.time(piece.first))
    return PieceResult(piece.number, stats.frames, stats.frames_swapped, stats.faces_swapped, stats.seconds)


def _init_local_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)  # workers share the machine's cores


def _run_local(tasks: list[PieceTask], workers: int, done: Callable[[PieceResult], None]) -> None:
    """Local worker processes; a piece whose worker died is redone (up to LOCAL_RETRIES times)."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    todo = list(tasks)
    for attempt in range(LOCAL_RETRIES + 1):
        try:
            with process_pool(min(workers, len(todo)), _init_local_worker, (threads,)) as pool:
                futures = {pool.submit(swap_piece, task): task for task in todo}
                for future in cf.as_completed(futures):
                    done(future.result())
                    todo.remove(futures[future])
            return
        except cf.process.BrokenProcessPool:
            if attempt == LOCAL_RETRIES:
                raise SwapfaceError(f"a swap worker process died {LOCAL_RETRIES + 1} times; "
                                    f"{len(todo)} piece(s) unfinished (rerun with --resume)") from None


def _run_ray(tasks: list[PieceTask], address: str, done: Callable[[PieceResult], None]) -> None:
    """Ray tasks on a cluster (each asks for a GPU when the model runs on CUDA); Ray reruns a task
    whose worker was lost."""
    with connection(address) as ray:
        device = tasks[0].options.device if tasks else "cpu"
        wants_gpu = device.startswith("cuda") or (device == "auto" and cluster_gpus() > 0)
        remote = ray.remote(num_cpus=1, num_gpus=int(wants_gpu), max_retries=3, retry_exceptions=False)(swap_piece)
        pending = [remote.remote(task) for task in tasks]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done(ray.get(ready[0]))


def _fingerprint(input_path: Path, model_dir: Path, options: SwapOptions, pieces: list[Piece]) -> str:
    """What a piece depends on: the input and model files (by size and time) and the options."""
    parts = [str(input_path.resolve()), str(model_dir.resolve())]
    for path in [input_path, *sorted(model_dir.glob("*"))]:
        if path.is_file():
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    parts.append(repr(options))
    parts.append(json.dumps([asdict(p) for p in pieces]))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def pieces_folder(output: Path) -> Path:
    return output.parent / f".{output.name}.pieces"


def swap_chunked(input_path: str | Path, model_dir: str | Path, output: str | Path, options: SwapOptions,
                 workers: int, ray_address: str | None = None, resume: bool = False,
                 progress: Callable[[SwapStats], None] | None = None) -> SwapStats:
    """Swap a video in pieces on `workers` local processes (or on a Ray cluster) and join them."""
    input_path, model_dir, output = Path(input_path), Path(model_dir), Path(output)
    info = probe(input_path)
    kind = check_output(info, output, model_dir, options.patches)
    if kind != "video" or info.kind != "video":
        raise InputError(output, "swapping in pieces (--workers/--ray) needs a video input and a video output")
    if options.patches is not None:
        raise SwapfaceError("--patches is not available with --workers or --ray: swap in one piece")
    # A bad model fails here, once, before any worker starts; checked on the CPU, so the driver, which swaps
    # nothing, holds no GPU memory while the workers do.
    SwapPipeline.from_model_dir(model_dir, replace(options, device="cpu"))
    finalize, tags = prepare_signing(input_path, model_dir, output, options.credentials, options.sign_cert,
                                     options.sign_key, options.watermark is not None)
    index = index_video(input_path)
    first = index.frame_at(options.start)
    end = len(index.pts) if options.end is None else index.frame_at(options.end)
    if end <= first:
        raise InputError(input_path, "no frames in the --start/--end range")
    fps = float(info.fps or 25)
    warmup = max(2 * options.detect_every, round(WARMUP_SECONDS * fps))
    pieces = min(PIECES_PER_WORKER * workers, max(workers, (end - first) // (4 * warmup)))  # warm-up <= 25%
    plan = plan_pieces(index, pieces, first, end, options.detect_every, warmup)

    folder = pieces_folder(output)
    fingerprint = _fingerprint(input_path, model_dir, options, plan)
    plan_path = folder / PLAN_FILE
    if not (resume and plan_path.is_file() and json.loads(plan_path.read_text()).get("fingerprint") == fingerprint):
        shutil.rmtree(folder, ignore_errors=True)  # a fresh run, or a plan for other inputs or options
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan_path, json.dumps({"fingerprint": fingerprint, "pieces": [asdict(p) for p in plan]}))
    results_path = folder / "results.json"
    results: dict[int, dict] = {}
    if results_path.is_file():
        results = {int(k): v for k, v in json.loads(results_path.read_text()).items()}

    def piece_path(piece: Piece) -> Path:
        return folder / f"piece-{piece.number:05d}{output.suffix}"

    started = time.perf_counter()

    def totals() -> SwapStats:
        stats = SwapStats(seconds=time.perf_counter() - started)
        for result in results.values():
            stats.frames += result["frames"]
            stats.frames_swapped += result["frames_swapped"]
            stats.faces_swapped += result["faces_swapped"]
        return stats

    def done(result: PieceResult) -> None:  # a piece counts once its file is in place and this is recorded
        results[result.number] = asdict(result)
        atomic_write_text(results_path, json.dumps(results))
        if progress is not None:
            progress(totals())

    finished = {n for n in results if n < len(plan) and piece_path(plan[n]).is_file()}  # by a killed run
    results = {n: results[n] for n in finished}
    tasks = [PieceTask(str(input_path.resolve()), str(model_dir.resolve()), options, info, index, piece,
                       str(piece_path(piece))) for piece in plan if piece.number not in finished]
    if ray_address is not None:
        _run_ray(tasks, ray_address, done)
    elif tasks:
        _run_local(tasks, workers, done)
    stats = totals()
    stats.frames_reused = sum(results[n]["frames"] for n in finished)
    try:
        check_swapped_any(stats, input_path, options)
    except InputError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    join_pieces([(piece_path(p), index.pts[p.first]) for p in plan], output, info, options.video, options.start,
                options.end, finalize=finalize, tags=tags)
    shutil.rmtree(folder, ignore_errors=True)
    stats.seconds = time.perf_counter() - started
    return stats
