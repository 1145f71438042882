"""The swap stage: video (or image, or folder) + model dir -> the same media with the face replaced.

Four stages run side by side, joined by bounded queues, so that no stage waits on another more than
it must: one thread decodes ahead, and worker threads run the keyframes' full-frame detection ahead
of the tracker (dlib releases the GIL); the main thread tracks faces (windowed re-detection,
landmarks, smoothing) and aligns them; one thread crops the faces of a batch of frames, runs the
model on them and composites them back (frames in parallel: OpenCV releases the GIL too); one thread
encodes behind. Memory stays bounded by the queue sizes and the batch, whatever the video's length
(about 5 x queue_frames + 2 x batch frames). Frames come out in input order with their input
timestamps; frames without a face to swap pass through untouched.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from swapface.devices import resolve_device
from swapface.errors import InputError, SwapfaceError
from swapface.faces import (
    DEFAULT_BACKEND,
    AlignSpec,
    FaceBackend,
    alignment_matrix,
    crop_face,
    make_backend,
    transform_points,
)
from swapface.media import Frame, MediaInfo, open_media, probe
from swapface.media.sequences import output_sequence
from swapface.media.writer import (
    PatchWriter,
    check_audio_fits,
    check_empty_folder,
    check_writable,
    open_writer,
    output_kind,
)
from swapface.model import ModelConfig, SwapAutoencoder
from swapface.modeldir import CONFIG_FILE, face_backend, load_model, read_config_json
from swapface.outputs import check_outputs
from swapface.provenance.credentials import prepare_signing
from swapface.provenance.watermark import KeptPixels, Watermarker
from swapface.swap.blend import paste_face
from swapface.swap.color import transfer_color
from swapface.swap.detect_ahead import DetectAhead
from swapface.swap.masks import crop_pixels, face_mask
from swapface.swap.options import DIRECTIONS, SwapOptions
from swapface.swap.sharpen import SHARPEN_RADIUS, sharpen
from swapface.swap.tracking import FaceTracker, TrackedFace


class StageTimes:
    """Seconds spent per stage, summed over frames (stages in other threads overlap the main one)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[stage] += time.perf_counter() - start


@dataclass
class SwapStats:
    frames: int = 0
    frames_swapped: int = 0
    faces_swapped: int = 0
    seconds: float = 0.0
    times: StageTimes = field(default_factory=StageTimes)
    frames_reused: int = 0  # swapped by an interrupted run and kept (--resume)

    @property
    def rate(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Pending:
    """A frame waiting for its faces to come back from the model."""

    frame: Frame
    image: np.ndarray
    faces: list[TrackedFace]
    matrices: list[np.ndarray]
    crops: list[np.ndarray]  # filled in the swapping thread


def choose_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype: bf16 on CUDA and on CPUs with native bf16 (AMX), else full fp32 (None)."""
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and _cpu_has_bf16() else None


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def load_swap_model(model_dir: str | Path, device: str) -> tuple[SwapAutoencoder, ModelConfig, AlignSpec]:
    """Load a model dir and check that it really makes faces of the size its config says."""
    torch_device = resolve_device(device)
    model, config = load_model(model_dir, device=torch_device)
    config_path = Path(model_dir) / CONFIG_FILE
    recorded = read_config_json(model_dir)
    for key in ("resolution", "coverage"):
        if recorded.get(key) != getattr(config, key):
            raise InputError(config_path, f"{key} mismatch: the dir records {recorded.get(key)!r}, the model was "
                                          f"built for {getattr(config, key)!r}")
    try:
        spec = AlignSpec(config.resolution, config.coverage)
    except ValueError as exc:
        raise InputError(config_path, str(exc)) from None
    probe_input = torch.zeros(1, 3, config.resolution, config.resolution, device=torch_device)
    try:
        rgb, mask = model.swap(probe_input, "a")
    except RuntimeError as exc:
        raise InputError(config_path, f"model cannot run at its resolution {config.resolution} ({exc})") from None
    if rgb.shape[-2:] != (config.resolution, config.resolution) or mask.shape[-2:] != rgb.shape[-2:]:
        raise InputError(config_path, f"resolution mismatch: config says {config.resolution} px, the model "
                                      f"outputs {rgb.shape[-1]} px")
    return model, config, spec


class FaceSwapper:
    """The per-face work: crop, model, mask, colour, inverse warp and blend, for batches of frames."""

    def __init__(self, model: SwapAutoencoder, spec: AlignSpec, options: SwapOptions,
                 times: StageTimes | None = None, patches: PatchWriter | None = None) -> None:
        self.model, self.spec, self.options = model, spec, options
        self.device = next(model.parameters()).device
        self.dtype = choose_dtype(self.device, options.precision)
        self.times = times or StageTimes()
        self.patches = patches
        self.identity = DIRECTIONS[options.direction]
        self.watermark = Watermarker(options.watermark) if options.watermark is not None else None
        workers = options.blend_workers or min(8, max(1, (os.cpu_count() or 1) - 1))
        self._pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="swapface-blend") if workers > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def prepare(self, frame: Frame, faces: list[TrackedFace]) -> _Pending:
        """Align the faces to swap (at the model's resolution and coverage); `run` crops them."""
        with self.times("align"):
            chosen = [f for f in faces if f.selected]
            matrices = [alignment_matrix(f.landmarks, self.spec) for f in chosen]
        return _Pending(frame, frame.image, chosen, matrices, [])

    def _crop(self, pending: _Pending) -> None:
        pending.crops = [crop_face(pending.image, m, self.spec.size) for m in pending.matrices]

    def run(self, batch: list[_Pending]) -> None:
        """Crop and swap every face of the batch's frames (frames without faces are left as they are)."""
        with self.times("crop"):  # here, not in the tracking thread, and frames in parallel
            if self._pool is None:
                for pending in batch:
                    self._crop(pending)
            else:
                list(self._pool.map(self._crop, batch))
        crops = [c for p in batch for c in p.crops]
        if not crops:
            return
        with self.times("model"):
            rgb, masks = self._infer(np.stack(crops))
        jobs = []
        for pending in batch:
            for i, (face, matrix, crop) in enumerate(zip(pending.faces, pending.matrices, pending.crops,
                                                         strict=True)):
                jobs.append((pending, i, face, matrix, crop, rgb[len(jobs)], masks[len(jobs)]))
        with self.times("blend"):
            if self._pool is None:
                for job in jobs:
                    self._composite(*job)
            else:
                # OpenCV releases the GIL: frames of a batch composite in parallel. Faces of one frame
                # stay in one task, in order, since they may overlap.
                by_frame: dict[int, list] = defaultdict(list)
                for job in jobs:
                    by_frame[id(job[0])].append(job)
                for future in [self._pool.submit(self._composite_all, group) for group in by_frame.values()]:
                    future.result()

    def _composite_all(self, jobs: list) -> None:
        for job in jobs:
            self._composite(*job)

    def _infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(crops).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                             enabled=self.dtype is not None):
            rgb, mask = self.model.swap(x, self.identity)
        rgb = (rgb.float().clamp_(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        mask = mask.float().clamp_(0, 1)[:, 0].cpu().numpy()
        return rgb, mask

    def _composite(self, pending: _Pending, index: int, face: TrackedFace, matrix: np.ndarray, crop: np.ndarray,
                   rgb: np.ndarray, learned: np.ndarray) -> None:
        o, size = self.options, self.spec.size
        crop_landmarks = transform_points(face.landmarks, matrix)
        mask, keep = face_mask(o.mask, learned, crop_landmarks, size, crop_pixels(o.erode, size),
                               crop_pixels(o.blur, size), crop)
        rgb = transfer_color(sharpen(rgb, o.sharpen, crop_pixels(SHARPEN_RADIUS, size)), crop, mask, o.color)
        paste_face(pending.image, rgb, mask, matrix, o.blend, keep)
        if self.watermark is not None:  # the kept occluders stay exactly as they were, unmarked too
            self.watermark(pending.image, face.bbox, None if keep is None else KeptPixels(keep, matrix))
        if self.patches is not None:
            self.patches.write(pending.frame, index, rgb, mask, matrix, track=face.track_id,
                               coverage=self.spec.coverage)


# -- threads ----------------------------------------------------------------------------------------

_DONE = object()


class _Ahead:
    """Run an iterator in a thread, `size` items ahead of its consumer (decoding ahead)."""

    def __init__(self, items: Iterable, size: int, times: StageTimes, stage: str) -> None:
        self._items, self._times, self._stage = items, times, stage
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"swapface-{stage}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            iterator = iter(self._items)
            while not self._stop.is_set():
                with self._times(self._stage):
                    item = next(iterator, _DONE)
                self._put(item)
                if item is _DONE:
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Behind:
    """Call `consume(item)` in a thread, at most `size` items behind the producer (encoding behind)."""

    def __init__(self, consume: Callable[[object], None], size: int, times: StageTimes, stage: str | None) -> None:
        self._consume, self._times, self._stage = consume, times, stage
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"swapface-{stage or 'swap'}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE or self._error is not None:
                return
            try:
                if self._stage is None:  # the consumer times its own parts
                    self._consume(item)
                else:
                    with self._times(self._stage):
                        self._consume(item)
            except BaseException as exc:
                self._error = exc

    def put(self, item: object) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for the queue to drain; re-raise the consumer's error."""
        self.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop after the item in hand, dropping the rest (the caller is failing anyway)."""
        self._error = self._error or SwapfaceError("aborted")
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_DONE)
        self._thread.join()


# -- the stage --------------------------------------------------------------------------------------

ProgressCallback = Callable[[SwapStats], None]


def _in_range(frames: Iterable[Frame], start: float, end: float | None) -> Iterator[Frame]:
    """Frames with start <= time < end (the decoder stops at the end instead of reading on)."""
    for frame in frames:
        if end is not None and frame.time >= end - 1e-9:
            return
        if frame.time >= start - 1e-9:
            yield frame


def default_min_face(width: int, height: int) -> int:
    """Smallest face looked for by full-frame detection: a tenth of the short side, at least 80 px.
    Larger values make detection cheaper on big frames (HOG's window is 80 px)."""
    return max(80, min(width, height) // 10)


def check_output(input_info: MediaInfo, output: Path, model_dir: Path | None = None,
                 patches: Path | None = None) -> str:
    """The output kind, after checking, before any work, that every output suits the input, destroys
    no input and can be written."""
    kind = output_kind(output)
    is_folder = kind == "folder"
    sequence = output_sequence(output)
    named = sequence.pattern if sequence is not None else output  # shot.####.exr is shot.%04d.exr
    check_outputs([input_info.path, model_dir], files=[None if is_folder else named],
                  folders=[output if is_folder else None, patches])
    if kind == "video" and input_info.kind not in ("video", "sequence"):
        raise InputError(output, "a video output needs a video or image sequence input (write a .png or a folder)")
    if kind == "image" and input_info.kind != "image":
        raise InputError(output, "a single-image output needs a single-image input (write a video or a folder)")
    check_writable(output)
    if patches is not None:
        check_empty_folder(patches)
    if kind == "video":
        check_audio_fits(output, input_info)
    return kind


class SwapPipeline:
    """The swap as a library object, diffusers-style: built once from a model dir and options, then
    called on frames in memory (`swap_media` wraps it with files; chunk workers and platform jobs call
    it directly). Frames come out in order through `sink(frame, image)`, swapped where a face is."""

    def __init__(self, model: SwapAutoencoder, spec: AlignSpec, options: SwapOptions = SwapOptions(),
                 backend: str = DEFAULT_BACKEND) -> None:
        self.model, self.spec, self.options, self.backend = model, spec, options, backend

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, options: SwapOptions = SwapOptions()) -> SwapPipeline:
        """The model, and the face backend its facesets were made with (or `options.backend` if it fits)."""
        model, _, spec = load_swap_model(model_dir, options.device)
        return cls(model, spec, options, face_backend(model_dir, options.backend))

    def __call__(self, frames: Iterable[Frame], sink: Callable[[Frame, np.ndarray], None], *, video: bool = True,
                 frame_size: tuple[int, int] | None = None, patches: PatchWriter | None = None,
                 write_from: float | None = None, progress: ProgressCallback | None = None) -> SwapStats:
        """Swap `frames` (a video's, in order, when `video`; else unrelated photos) into `sink`.
        `frame_size` (width, height) sets the default smallest face looked for; frames before
        `write_from` seconds are tracked (warming the tracker and smoothing up) but not swapped or
        written."""
        options, stats = self.options, SwapStats()
        min_face = options.min_face or default_min_face(*(frame_size or (0, 0)))

        def make_detector() -> FaceBackend:  # the tracker's, and one per thread detecting ahead
            return make_backend(self.backend, detector=options.detector, min_face=min_face)

        backend = make_detector()
        # Windows around tracked faces: detected at scale 1, with no score floor (a face is known to be there).
        window_backend = make_backend(self.backend, detector=options.detector, min_face=80, min_score=0.0)
        is_wanted = None
        if options.reference is not None:
            reference = np.asarray(options.reference, np.float32)

            def is_wanted(image: np.ndarray, landmarks: np.ndarray) -> bool:
                with stats.times("identify"):
                    embedding = backend.embed(image, landmarks)
                return float(np.linalg.norm(embedding - reference)) <= options.max_distance

        tracker = FaceTracker(backend, window_backend, detect_every=options.detect_every if video else 1,
                              smooth=options.smooth if video else 0.0, is_wanted=is_wanted)
        swapper = FaceSwapper(self.model, self.spec, options, stats.times, patches)
        try:
            _run(frames, tracker, swapper, sink, options, stats, progress, independent_frames=not video,
                 make_detector=make_detector, write_from=write_from)
        finally:
            swapper.close()
        return stats


def swap_media(input_path: str | Path, model_dir: str | Path, output: str | Path, options: SwapOptions = SwapOptions(),
               progress: ProgressCallback | None = None) -> SwapStats:
    """Swap the faces of `input_path` with the model in `model_dir`; write `output` atomically."""
    input_path, output = Path(input_path), Path(output)
    info = probe(input_path)  # (an image sequence's colour space only matters once its pixels are read)
    kind = check_output(info, output, Path(model_dir), options.patches)
    pipeline = SwapPipeline.from_model_dir(model_dir, options)
    finalize, tags = prepare_signing(input_path, model_dir, output, options.credentials, options.sign_cert,
                                     options.sign_key, options.watermark is not None)
    is_video = info.kind in ("video", "sequence")  # frames that follow one another in time
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(open_writer(output, kind, info, options.video, options.start, options.end,
                                                 finalize=finalize, tags=tags))
        patches = stack.enter_context(PatchWriter(options.patches)) if options.patches else None
        frames = _in_range(open_media(input_path, options.colorspace), options.start, options.end) if is_video \
            else open_media(input_path, options.colorspace)
        stats = pipeline(frames, writer.write, video=is_video, frame_size=(info.width, info.height),
                         patches=patches, progress=progress)
        check_swapped_any(stats, input_path, options)  # raised here: nothing is left written
    return stats


def check_swapped_any(stats: SwapStats, input_path: str | Path, options: SwapOptions) -> None:
    """Footage in which no face was swapped is an error, unless asked for (`allow_no_faces`)."""
    if stats.faces_swapped == 0 and not options.allow_no_faces:
        whom = "of the --reference person " if options.reference is not None else ""
        raise InputError(input_path, f"no face {whom}found to swap in {stats.frames} frame(s); nothing "
                                     "written (--allow-no-faces passes such footage through)")


def _run(frames: Iterable[Frame], tracker: FaceTracker, swapper: FaceSwapper,
         write: Callable[[Frame, np.ndarray], None], options: SwapOptions, stats: SwapStats,
         progress: ProgressCallback | None, independent_frames: bool = False,
         make_detector: Callable[[], FaceBackend] | None = None, write_from: float | None = None) -> None:
    """Four stages, each in its own thread, joined by bounded queues: decode ahead (with keyframe
    detection ahead in worker threads, when `make_detector` makes them their backends); track faces
    (here); model + composite a batch; encode behind. Batches and frames stay in order end to end."""
    started = time.perf_counter()
    times = stats.times
    reader = _Ahead(frames, options.queue_frames, times, "decode")
    encoder = _Behind(lambda item: write(*item), options.queue_frames, times, "encode")

    def swap_batch(batch: list[_Pending]) -> None:
        swapper.run(batch)
        for item in batch:
            encoder.put((item.frame, item.image))
            stats.frames += 1
            if item.faces:
                stats.frames_swapped += 1
                stats.faces_swapped += len(item.faces)
        stats.seconds = time.perf_counter() - started
        if progress is not None:
            progress(stats)

    swapping = _Behind(swap_batch, 2, times, None)
    workers = options.detect_workers if options.detect_workers is not None else min(4, (os.cpu_count() or 1) - 1)
    if make_detector is not None and workers > 0:
        ahead = DetectAhead(reader, tracker.is_keyframe, make_detector, workers, ahead=2 * options.queue_frames,
                            timer=lambda: times("detect ahead"))
        tracked: Generator[tuple[Frame, list | None]] = iter(ahead)
    else:
        tracked = ((frame, None) for frame in reader)
    pending: list[_Pending] = []
    try:
        for frame, detections in tracked:
            if independent_frames:  # photos of a folder: no face is followed from one to the next
                tracker.reset()
            with times("track"):
                faces = tracker.update(frame.image, frame.time, detections)
            if write_from is not None and frame.time < write_from - 1e-9:
                continue  # a warm-up frame: it only primed the tracker
            pending.append(swapper.prepare(frame, faces))
            waiting_faces = sum(len(p.faces) for p in pending)
            if waiting_faces >= options.batch_size or len(pending) >= options.queue_frames:
                swapping.put(pending)
                pending = []
        if pending:
            swapping.put(pending)
        swapping.close()
    except BaseException:
        swapping.abort()
        encoder.abort()
        raise
    finally:
        tracked.close()  # stops the detection threads before the decoder
        reader.close()
    encoder.close()
    stats.seconds = time.perf_counter() - started
