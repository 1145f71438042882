"""The swap stage a GPU changes, without dlib: faces/s of the model in swap (bench/swap.py's "model" column).

bench/swap.py needs dlib to find faces, which a bare GPU machine lacks (bench/gpu.sh), so this times what
the GPU takes over: crops through encoder and decoder B at the 128 and 256 px presets. Baseline, in the
same process: batch 1 in fp32 (what bench/swap.py's baseline does); ours: batches of 8 in bf16, channels_last.

    python bench/gpu_model_speed.py [--device cuda] [--faces 512]
"""

from __future__ import annotations

import argparse
import time

import torch

from swapface.model import SwapAutoencoder, preset


def faces_per_second(model: SwapAutoencoder, faces: torch.Tensor, batch: int, bf16: bool) -> float:
    device = faces.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def one_pass() -> None:
        for start in range(0, len(faces), batch):
            with torch.no_grad(), autocast:
                model.swap(faces[start:start + batch], "b")

    one_pass()  # warm-up: kernels chosen, memory allocated
    if device.type == "cuda":
        torch.cuda.synchronize()
    begin = time.perf_counter()
    one_pass()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(faces) / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--faces", type=int, default=512)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    print("| preset | run | faces/s | ms per face | vs baseline |\n|---|---|---|---|---|")
    for name in ("128", "256"):
        config = preset(name)
        model = SwapAutoencoder(config).to(device).eval()
        faces = torch.rand(args.faces, 3, config.resolution, config.resolution, device=device)
        base = faces_per_second(model, faces, 1, False)
        model = model.to(memory_format=torch.channels_last)
        ours = faces_per_second(model, faces.contiguous(memory_format=torch.channels_last), 8, True)
        for run, rate in (("baseline: batch 1, fp32", base), ("ours: batch 8, bf16, channels_last", ours)):
            print(f"| {name} | {run} | {rate:.1f} | {1000 / rate:.2f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
