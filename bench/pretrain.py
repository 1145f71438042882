"""Pretrain a base model on one faceset of many people, for `bench/quality.py --init-from` (bench/gpu.sh part 4).

`swapface train POOL POOL -m BASE` does the same where the CLI's dependencies are installed; a bare GPU machine
has torch, numpy and OpenCV only, so this calls the same training loop without the CLI. On the CPU proxy a base
made the pair's swaps keep the source's landmarks far better (docs/benchmarks.md, "a pretrained base"); at 128
px the GPU protocol has not had one yet.

    python bench/pretrain.py POOL BASE --minutes 3.5 --batch-size 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from swapface.errors import SwapfaceError
from swapface.train.loop import train
from swapface.train.options import TRAIN_PRECISIONS, TrainOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pool", type=Path, help="faceset of many people (both decoders learn every face)")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="bf16", choices=TRAIN_PRECISIONS)
    parser.add_argument("--preset", default="128")
    parser.add_argument("--resolution", type=int, default=None, help="override the preset's (e.g. 64 on CPU)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=3.5, help="training budget, wall clock")
    parser.add_argument("--steps", type=int, help="also stop at this many steps")
    args = parser.parse_args()
    options = TrainOptions(preset=args.preset, resolution=args.resolution, batch_size=args.batch_size,
                           time_limit=args.minutes * 60, steps=args.steps, device=args.device,
                           precision=args.precision, save_every=2000, preview_every=100_000, snapshot_every=0,
                           log_every=100)
    result = train(args.pool, args.pool, args.model_dir, options)
    print(f"base: {result.step} steps (budget {args.minutes} min) in {args.model_dir}")


if __name__ == "__main__":
    try:
        main()
    except SwapfaceError as error:  # a missing or unusable faceset: one line, no traceback
        sys.exit(f"error: {error}")
