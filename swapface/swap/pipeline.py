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
from swapface.faces import AlignSpec, FaceBackend, alignment_matrix, crop_face, make_backend, transform_points
from swapface.media import Frame, MediaInfo, open_media, probe
from swapface.media.writer import (
    ImageWriter,
    PatchWriter,
    VideoSettings,
    VideoWriter,
    check_audio_fits,
    check_writable,
    output_kind,
)
from swapface.model import ModelConfig, SwapAutoencoder
from swapface.modeldir import CONFIG_FILE, face_backend, load_model, read_config_json
from swapface.swap.blend import BLEND_MODES, paste_face
from swapface.swap.color import COLOR_MODES, transfer_color
from swapface.swap.detect_ahead import DetectAhead
from swapface.swap.masks import MASK_MODES, crop_pixels, face_mask
from swapface.swap.tracking import FaceTracker, TrackedFace

DIRECTIONS = {"a2b": "b", "b2a": "a"}  # input shows A -> render with B's decoder, and back


@dataclass(frozen=True)
class SwapOptions:
    """How to swap; the defaults suit most footage."""

    direction: str = "a2b"
    reference: np.ndarray | None = None  # identity embedding of the only person to swap
    max_distance: float = 0.6
    color: str = "reinhard"
    mask: str = "all"  # learned + hull + occlusion: measured best (docs/benchmarks.md, "Occlusion mask")
    erode: float = 4.0  # px of a face 256 px across (scales with the face)
    blur: float = 12.0
    blend: str = "laplacian"
    smooth: float = 1.0
    backend: str | None = None  # None: the backend that made the model's facesets (see modeldir.face_backend)
    detector: str | None = None  # None: the backend's default
    min_face: int | None = None  # None: a tenth of the frame's short side, at least 80 px
    detect_every: int = 5
    detect_workers: int | None = None  # threads detecting keyframes ahead (None: cores - 1, up to 4; 0: inline)
    batch_size: int = 8
    device: str = "cpu"
    precision: str = "auto"  # auto: bf16 where the hardware has it (CUDA; CPUs with AMX/avx512-bf16)
    start: float = 0.0
    end: float | None = None
    video: VideoSettings = field(default_factory=VideoSettings)
    patches: Path | None = None
    queue_frames: int = 8
    blend_workers: int | None = None  # threads compositing faces (None: one per core but one, up to 8)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise SwapfaceError(f"direction must be a2b or b2a, got {self.direction!r}")
        if self.end is not None and self.end <= self.start:
            raise SwapfaceError(f"--end ({self.end}) must be after --start ({self.start})")
        for name, value, allowed in (("color", self.color, COLOR_MODES), ("mask", self.mask, MASK_MODES),
                                     ("blend", self.blend, BLEND_MODES)):
            if value not in allowed:
                raise SwapfaceError(f"--{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.start < 0:
            raise SwapfaceError("--start must not be negative")


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
    if precision not in ("auto", "bf16"):
        raise SwapfaceError(f"precision must be auto, fp32 or bf16, got {precision!r}")
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
        mask = face_mask(o.mask, learned, crop_landmarks, size, crop_pixels(o.erode, size), crop_pixels(o.blur, size),
                         crop)
        rgb = transfer_color(rgb, crop, mask, o.color)
        paste_face(pending.image, rgb, mask, matrix, o.blend)
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


def default_min_face(info: MediaInfo) -> int:
    """Smallest face looked for by full-frame detection: a tenth of the short side, at least 80 px.
    Larger values make detection cheaper on big frames (HOG's window is 80 px)."""
    return max(80, min(info.width, info.height) // 10)


def check_output(input_info: MediaInfo, output: Path) -> str:
    """The output kind, after checking it suits the input and can be written."""
    kind = output_kind(output)
    if kind == "video" and input_info.kind != "video":
        raise InputError(output, "a video output needs a video input (write a .png or a folder)")
    if kind == "image" and input_info.kind != "image":
        raise InputError(output, "a single-image output needs a single-image input (write a video or a folder)")
    check_writable(output)
    if kind == "video":
        check_audio_fits(output, input_info)
    return kind


def swap_media(input_path: str | Path, model_dir: str | Path, output: str | Path, options: SwapOptions = SwapOptions(),
               progress: ProgressCallback | None = None) -> SwapStats:
    """Swap the faces of `input_path` with the model in `model_dir`; write `output` atomically."""
    input_path, output = Path(input_path), Path(output)
    info = probe(input_path)
    kind = check_output(info, output)
    model, _, spec = load_swap_model(model_dir, options.device)
    stats = SwapStats()
    min_face = options.min_face or default_min_face(info)

    backend_name = face_backend(model_dir, options.backend)

    def make_detector() -> FaceBackend:  # the tracker's, and one per thread detecting ahead
        return make_backend(backend_name, detector=options.detector, min_face=min_face)

    backend = make_detector()
    # Windows around tracked faces: detected at scale 1, with no score floor (a face is known to be there).
    window_backend = make_backend(backend_name, detector=options.detector, min_face=80, min_score=0.0)
    is_wanted = None
    if options.reference is not None:
        reference = np.asarray(options.reference, np.float32)

        def is_wanted(image: np.ndarray, landmarks: np.ndarray) -> bool:
            with stats.times("identify"):
                embedding = backend.embed(image, landmarks)
            return float(np.linalg.norm(embedding - reference)) <= options.max_distance

    is_video = info.kind == "video"
    tracker = FaceTracker(backend, window_backend, detect_every=options.detect_every if is_video else 1,
                          smooth=options.smooth if is_video else 0.0, is_wanted=is_wanted)
    with contextlib.ExitStack() as stack:
        if kind == "video":
            writer = stack.enter_context(VideoWriter(output, info, options.video, options.start, options.end))
        else:
            writer = stack.enter_context(ImageWriter(output, single=kind == "image"))
        patches = stack.enter_context(PatchWriter(options.patches)) if options.patches else None
        swapper = FaceSwapper(model, spec, options, stats.times, patches)
        stack.callback(swapper.close)
        frames = _in_range(open_media(input_path), options.start, options.end) if is_video \
            else open_media(input_path)
        _run(frames, tracker, swapper, writer.write, options, stats, progress, independent_frames=not is_video,
             make_detector=make_detector)
    return stats


def _run(frames: Iterable[Frame], tracker: FaceTracker, swapper: FaceSwapper,
         write: Callable[[Frame, np.ndarray], None], options: SwapOptions, stats: SwapStats,
         progress: ProgressCallback | None, independent_frames: bool = False,
         make_detector: Callable[[], FaceBackend] | None = None) -> None:
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
