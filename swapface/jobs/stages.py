"""Run one job: resolve its inputs to paths, call the same stage function as the CLI, record outputs.

Runs inside a worker process. Progress goes to the job row (a few times a second at most); outputs are
written atomically by the stages, so a killed job leaves nothing half-written under a final name.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from swapface.errors import SwapfaceError
from swapface.eval.evaluate import EvalOptions
from swapface.faces import DEFAULT_BACKEND, AlignSpec
from swapface.faceset.extract import ExtractOptions
from swapface.jobs.layout import DataDir
from swapface.jobs.options import EvalJobOptions, ExtractJobOptions, SwapJobOptions, TrainJobOptions, parse
from swapface.jobs.store import Job, Store, StoredFile
from swapface.media.writer import VideoSettings
from swapface.swap.options import SwapOptions
from swapface.train.options import TrainOptions

PROGRESS_SECONDS = 0.5


class JobFailed(SwapfaceError):
    """A job's inputs are not usable (e.g. an input job failed); one line for the client."""


class Reporter:
    """Throttled progress writes to the job row."""

    def __init__(self, store: Store, job_id: str, carried: dict[str, Any] | None = None) -> None:
        self.store, self.job_id, self.last = store, job_id, 0.0
        self.carried = dict(carried or {})  # kept in every write (e.g. the stage's messages)

    def __call__(self, progress: float, force: bool = False, **info: Any) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        self.store.update_job(self.job_id, only_if_state=("running",),
                              progress=max(0.0, min(1.0, progress)), info={**self.carried, **info})

    def message(self, text: str) -> None:
        """A line from the stage (e.g. "resumed ... at step 40"): the last few stay in the job's info."""
        self.carried["messages"] = [*self.carried.get("messages", [])[-4:], text]


def _cores() -> int:
    """The CPU share the scheduler gave this job (it set torch's thread count to it)."""
    import torch

    return torch.get_num_threads()


def _input_job(store: Store, job_id: str, kind: str) -> Job:
    job = store.get_job(job_id)
    if job is None or job.kind != kind:
        raise JobFailed(f"input {job_id} is not a job of kind {kind}")
    if job.state != "done":
        raise JobFailed(f"input {kind} job {job_id} is {job.state}, not done")
    return job


def _input_file(store: Store, data: DataDir, file_id: str) -> tuple[StoredFile, Path]:
    row = store.get_file(file_id)
    if row is None or row.state != "ready":
        raise JobFailed(f"input file {file_id} does not exist or is not fully uploaded")
    return row, data.resolve(row.path)


def _register(store: Store, data: DataDir, job: Job, source: Path, name: str, kind: str, label: str) -> str:
    """Move a finished output into files/ under a server-made name and record it; returns its id."""
    row = StoredFile(project_id=job.project_id, label=label, name=name, path="", kind=kind,
                     size=source.stat().st_size, received=source.stat().st_size, job_id=job.id)
    row.path = f"files/{row.id}{source.suffix}"
    os.replace(source, data.resolve(row.path))
    store.add(row)
    return row.id


def extract_options(o: ExtractJobOptions, workers: int) -> ExtractOptions:
    """The ExtractOptions of a job's options (`workers`: the job's cores, where the job does not say)."""
    return ExtractOptions(spec=AlignSpec(o.size, o.coverage), every=o.every, min_face=o.min_face,
                          backend=o.backend or DEFAULT_BACKEND, detector=o.detector, min_score=o.min_score,
                          max_distance=o.max_distance, min_sharpness=o.min_sharpness, dedupe=o.dedupe,
                          workers=o.workers or workers, max_frames=o.max_frames)


def run_extract(store: Store, data: DataDir, job: Job, device: str, report: Reporter) -> dict[str, Any]:
    from swapface.faceset import Faceset
    from swapface.faceset.extract import ExtractStats, extract

    inputs, o = parse(job.kind, job.inputs, job.options)
    paths = [_input_file(store, data, file_id)[1] for file_id in inputs.files]
    options = extract_options(o, _cores())

    def show(stats: ExtractStats) -> None:
        total = stats.frames_total or 0
        report(stats.frames_read / total if total else 0.0, frames=stats.frames_read, frames_total=total,
               faces=stats.faces_kept, rate=round(stats.rate, 2))

    stats = extract(paths, data.faceset(job.id), options, progress=show)
    with Faceset.open(data.faceset(job.id)) as faceset:
        count = len(faceset)
    return {"faces": count, "frames": stats.frames_read}


def train_options(o: TrainJobOptions, device: str, time_budget: float | None) -> TrainOptions:
    """The TrainOptions of a job's options (`time_budget`: seconds left of the job's time limit)."""
    return TrainOptions(preset=o.preset, resolution=o.resolution, batch_size=o.batch_size, steps=o.steps,
                        time_limit=time_budget, lr=o.lr, kl_weight=o.kl_weight, gan_weight=o.gan_weight,
                        save_every=o.save_every, snapshot_every=o.snapshot_every, preview_every=o.preview_every,
                        log_every=o.log_every, eval_every=o.eval_every, holdout=o.holdout, device=device,
                        precision=o.precision, seed=o.seed, ema=o.ema)


def rank_devices(device: str, count: int) -> list[str]:
    """The device of each data-parallel rank of a training job given `device` by the scheduler: its
    GPUs by name ("cuda:0,cuda:3"), "cuda" for `count` cards a Ray task was given (they are numbered from
    0 inside it), or "cpu" for `count` CPU processes."""
    if "," in device:
        return device.split(",")
    if device == "cuda" and count > 1:
        return [f"cuda:{i}" for i in range(count)]
    return [device] * count


def run_train(store: Store, data: DataDir, job: Job, device: str, report: Reporter) -> dict[str, Any] | None:
    """Train, or resume from the model dir's checkpoint (after a kill, a pause or a server restart).
    The time budget counts over all runs of the job: `trained_s` in the job's info carries it on."""
    import torch

    from swapface.train.local_ranks import train_on_devices
    from swapface.train.loop import Progress

    inputs, o = parse(job.kind, job.inputs, job.options)
    faceset_a = data.faceset(_input_job(store, inputs.a, "extract").id)
    faceset_b = data.faceset(_input_job(store, inputs.b, "extract").id)
    trained_before = float(job.info.get("trained_s", 0.0))
    report.carried["messages"] = job.info.get("messages", [])
    budget = None if o.time_limit is None else max(1.0, o.time_limit * 60 - trained_before)
    started = time.monotonic()

    def show(p: Progress) -> None:
        trained = trained_before + time.monotonic() - started
        done_steps = p.step / p.total if p.total else 0.0
        done_time = trained / (o.time_limit * 60) if o.time_limit else 0.0
        fraction = max(done_steps, done_time)
        left = None
        if p.total and p.metrics.get("img_per_s"):
            left = (p.total - p.step) * 2 * o.batch_size / p.metrics["img_per_s"]
        if o.time_limit:
            by_time = o.time_limit * 60 - trained
            left = by_time if left is None else min(left, by_time)
        report(fraction, step=p.step, steps=p.total, trained_s=round(trained, 1),
               seconds_left=None if left is None else round(max(left, 0.0), 1),
               img_per_s=round(p.metrics.get("img_per_s", 0.0), 1),
               loss=round(p.metrics.get("loss", float("nan")), 5))

    devices = rank_devices(device, o.gpus)
    result = train_on_devices(faceset_a, faceset_b, data.model(job.id), train_options(o, devices[0], budget),
                              devices, threads=max(1, torch.get_num_threads() // len(devices)), progress=show,
                              message=report.message)
    trained = trained_before + time.monotonic() - started
    current = store.get_job(job.id)
    info = dict(current.info if current else {}, **report.carried, step=result.step, trained_s=round(trained, 1))
    store.update_job(job.id, info=info)
    if result.interrupted and (current is None or current.control != "stop"):
        return None  # paused, cancelled or the server stopped: the checkpoint is saved, nothing to publish
    return {"step": result.step}


def swap_options(o: SwapJobOptions, device: str, start: float, end: float | None) -> SwapOptions:
    """The SwapOptions of a job's options (`start`, `end`: the range to swap, one frame for a preview)."""
    return SwapOptions(direction=o.direction, color=o.color, mask=o.mask, erode=o.erode, blur=o.blur, blend=o.blend,
                       sharpen=o.sharpen, smooth=o.smooth, backend=o.backend, detector=o.detector,
                       min_face=o.min_face, detect_every=o.detect_every, batch_size=o.batch_size, device=device,
                       precision=o.precision, start=start, end=end, video=VideoSettings(codec=o.codec, crf=o.crf))


def run_swap(store: Store, data: DataDir, job: Job, device: str, report: Reporter) -> dict[str, Any]:
    from swapface.media import probe
    from swapface.swap.pipeline import SwapStats, swap_media

    inputs, o = parse(job.kind, job.inputs, job.options)
    model_dir = data.model(_input_job(store, inputs.model, "train").id)
    video_row, video = _input_file(store, data, inputs.video)
    info = probe(video)
    start, end = o.start, o.end
    if o.preview_at is not None:  # one frame: the range [t, t + 1 frame) written as a folder of one PNG
        frame = 1 / float(info.fps) if info.fps else 0.04
        start, end = o.preview_at, o.preview_at + frame
    options = swap_options(o, device, start, end)
    fps = float(info.fps) if info.fps else 0.0
    total = info.frame_count if start == 0 and end is None else \
        (max(1, round(((end or info.duration or 0) - start) * fps)) if fps else None)

    def show(stats: SwapStats) -> None:
        report(stats.frames / total if total else 0.0, frames=stats.frames, frames_total=total,
               faces=stats.faces_swapped, rate=round(stats.rate, 2))

    work = data.job_dir(job.id)
    stem = Path(video_row.name).stem or "video"
    if o.preview_at is not None:
        folder = work / "preview"
        shutil.rmtree(folder, ignore_errors=True)
        stats = swap_media(video, model_dir, folder, options, progress=show)
        frames = sorted(folder.glob("*.png"))
        if not frames:
            raise JobFailed(f"no frame at {o.preview_at} s in {video_row.name}")
        file_id = _register(store, data, job, frames[0], f"{stem}-preview.png", "image", "preview")
    else:
        out = work / "swapped.mp4"
        stats = swap_media(video, model_dir, out, options, progress=show)
        file_id = _register(store, data, job, out, f"{stem}-swapped.mp4", "video", "swapped")
    return {"file": file_id, "frames": stats.frames, "faces": stats.faces_swapped}


def eval_options(o: EvalJobOptions, workers: int) -> EvalOptions:
    """The EvalOptions of a job's options (`workers`: the job's cores, where the job does not say)."""
    return EvalOptions(backend=o.backend or DEFAULT_BACKEND, detector=o.detector, min_face=o.min_face,
                       max_frames=o.max_frames, workers=o.workers or workers)


def run_eval(store: Store, data: DataDir, job: Job, device: str, report: Reporter) -> dict[str, Any]:
    from swapface.eval.evaluate import evaluate
    from swapface.eval.report import write_report

    inputs, o = parse(job.kind, job.inputs, job.options)
    swap_job = _input_job(store, inputs.swap, "swap")
    swap_options = parse("swap", swap_job.inputs, swap_job.options)[1]
    if swap_options.preview_at is not None or swap_options.start or swap_options.end is not None:
        raise JobFailed(f"swap job {swap_job.id} covers a time range; eval needs a swap of the whole video")
    train_job = _input_job(store, swap_job.inputs["model"], "train")
    a, b = (data.faceset(train_job.inputs[side]) for side in "ab")
    target, original = (b, a) if swap_options.direction == "a2b" else (a, b)
    source = _input_file(store, data, swap_job.inputs["video"])[1]
    swapped = _input_file(store, data, swap_job.outputs["file"])[1]

    def show(done: int, total: int | None) -> None:
        report(done / total if total else 0.0, frames=done, frames_total=total)

    options = eval_options(o, _cores())
    result = evaluate(source, swapped, target, original, options, progress=show)
    json_path, html_path = write_report(data.report(job.id), result, None)
    return {"report": _register(store, data, job, html_path, "report.html", "html", "report"),
            "json": _register(store, data, job, json_path, "eval.json", "json", "report"),
            "closer_to_target": result.closer_to_target}


RUNNERS = {"extract": run_extract, "train": run_train, "swap": run_swap, "eval": run_eval}
