"""Training throughput and model FLOP utilisation: swapface's model vs the classic deepfakes autoencoder.

Both run in this process on the same real faces and the same on-device augmentation pipeline; ours
with the training loop's own step (mixed precision, channels_last on GPU, optional torch.compile),
the baseline in plain eager fp32. FLOPs per step are counted with torch.utils.flop_counter and set
against a matmul ceiling measured here, in the precision each model runs in.

    python bench/train.py                                  # CPU, 64/128/256 px
    python bench/train.py --device cuda --precision bf16 --batch-size 64 --steps 50 --compile
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from classic import ClassicAutoencoder, baseline_step
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from swapface.faces import AlignSpec
from swapface.train import distributed
from swapface.train.loop import Trainer
from swapface.train.options import TRAIN_PRECISIONS, TrainOptions

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


# -- measurement ------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Best FLOP/s of a large square matmul in `dtype`: the roof for model FLOP utilisation."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t))
    return best


def step_flops(step: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def images_per_second(step: Callable[[], None], images: int, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return images * steps / (time.perf_counter() - start)


def bench_faces(root: Path) -> tuple[Path, Path]:
    """Two small real facesets (256 px crops) from the shared clips, extracted once into `root`."""
    from swapface.faceset.extract import ExtractOptions, extract  # dlib: a bare GPU machine passes --facesets

    out = []
    for clip in ("lp_d6.mp4", "lp_d9.mp4"):
        path = root / Path(clip).stem
        extract([VIDEOS / clip], path, ExtractOptions(spec=AlignSpec(256, "whole"), every=2, max_frames=120,
                                                      workers=2))
        out.append(path)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=TRAIN_PRECISIONS, default="fp32", help="for our model")
    parser.add_argument("--resolutions", default="64,128,256")
    parser.add_argument("--batch-size", type=int, default=8, help="faces per identity per step")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile our model")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--facesets", nargs=2, type=Path, help="faceset A and B (default: extract from "
                                                                 "../shared/data into a temp dir)")
    args = parser.parse_args()
    if args.facesets is None and not VIDEOS.is_dir():
        parser.error(f"no clips at {VIDEOS} to extract faces from: pass --facesets A B")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    console = Console(width=200)
    with tempfile.TemporaryDirectory() as tmp:
        facesets = args.facesets or bench_faces(Path(tmp) / "facesets")
        dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
        ceiling = {args.precision: matmul_ceiling(device, dtype)}
        if args.precision != "fp32":
            ceiling["fp32"] = matmul_ceiling(device, torch.float32)
        title = (f"training throughput on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}"
                 f" ({torch.get_num_threads()} threads), batch {args.batch_size} per identity; matmul ceiling "
                 + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in ceiling.items()))
        if device.type == "cpu":  # other processes on the machine skew CPU numbers; say how busy it was
            title += f"; load average at start {os.getloadavg()[0]:.1f}"
        table = Table(title=title)
        for column in ("px", "model", "precision", "params (M)", "GFLOP/img (fwd+bwd)", "img/s", "TFLOP/s",
                       "% of ceiling", "vs baseline"):
            table.add_column(column, justify="right")
        for resolution in (int(r) for r in args.resolutions.split(",")):
            name = {64: "128", 128: "128", 256: "256"}.get(resolution, "512")
            options = TrainOptions(preset=name, resolution=resolution, batch_size=args.batch_size, device=args.device,
                                   precision=args.precision, compile=args.compile, save_every=10**9,
                                   preview_every=10**9, snapshot_every=0)
            trainer = Trainer(facesets[0], facesets[1], Path(tmp) / f"model{resolution}", options,
                              distributed.setup(args.device), message=lambda _t: None)
            classic = ClassicAutoencoder(resolution).to(device)
            classic_step = baseline_step(trainer, classic, torch.optim.Adam(classic.parameters(), 5e-5,
                                                                            betas=(0.5, 0.999)))
            images = 2 * args.batch_size
            rows = []
            for label, model, step, precision in (("classic (eager fp32)", classic, classic_step, "fp32"),
                                                  ("swapface", trainer.model, trainer.train_step, trainer.precision)):
                compiled, trainer.forward = trainer.forward, trainer.ddp  # count FLOPs on the eager model
                flops = step_flops(step)
                trainer.forward = compiled
                rate = images_per_second(step, images, args.steps, args.warmup, device)
                achieved = flops / images * rate
                rows.append((label, precision, sum(p.numel() for p in model.parameters()) / 1e6, flops / images / 1e9,
                             rate, achieved))
            base_rate = rows[0][4]
            for label, precision, params, gflop, rate, achieved in rows:
                table.add_row(str(resolution), label, precision, f"{params:.1f}", f"{gflop:.2f}", f"{rate:.1f}",
                              f"{achieved / 1e12:.3f}", f"{100 * achieved / ceiling[precision]:.0f}%",
                              f"{rate / base_rate:.2f}x")
            del trainer, classic
        console.print(table)


if __name__ == "__main__":
    main()
