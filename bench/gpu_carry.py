"""Build the folder that bench/gpu.sh needs beside the repository on a bare GPU machine (<= 64 MiB together).

A lent GPU machine has torch, numpy and OpenCV, no network, and none of our other dependencies. What
the benchmarks need beyond that travels in this folder:

- wheels/: safetensors (model files), rich and its three dependencies (the benchmark tables), downloaded
  here with pip for the GPU machine's Python (abi3 or pure wheels, so any CPython >= 3.11 on x86-64 Linux
  takes them). PyAV's wheel (36 MiB) does not fit beside the repository (21 MiB) and the facesets; the
  benchmarks read no video, so bench/gpu.sh puts a stand-in (bench/gpu_stubs/av) on the path instead;
- facesets/: the quality protocol's data, already extracted (dlib, and its 100 MB landmark model, stay
  here): a-train, a-held, b-train, b-held at 128 px, the training halves thinned to every `--every`-th
  face to fit (neighbouring video frames are near duplicates), the held-out halves whole.

dlib does not travel (its 68-point model alone is 95 MiB), so the GPU run saves its held-out outputs and
this machine scores them: `python bench/quality.py --score-outputs OUT/heldout --facesets-from
CARRY/facesets --max-faces 256`.

    python bench/quality.py --device cpu --minutes 0.01 --steps 1   # once: extract and split (if not done)
    python bench/gpu_carry.py /tmp/carry [--work ../quality-work] [--every 2]
    python bench/gpu_carry.py /tmp/carry --every 4 --pool POOL --pool-every 8   # for part 4: a base first

POOL is a faceset of many people without the protocol's two, e.g. `swapface extract` of every other clip and
still of ../shared/data, every 3rd frame (docs/benchmarks.md, "a pretrained base").
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import cv2

from swapface.faces import AlignSpec
from swapface.faceset.store import Faceset

WHEELS = ("safetensors", "rich", "markdown-it-py", "mdurl", "pygments")
RESOLUTION = 128
LIMIT = 64 * 2**20


def scaled_faceset(source: Path, target: Path, size: int, every: int) -> int:
    """Every `every`-th face of `source`, crops resized to `size` (landmarks and matrices scaled to match)."""
    shutil.rmtree(target, ignore_errors=True)
    with Faceset.open(source) as full, Faceset.create(target, AlignSpec(size, full.spec.coverage)) as part:
        scale = size / full.spec.size
        records = full.records()[::every]
        for record in records:
            crop = cv2.resize(full.load_image(record), (size, size), interpolation=cv2.INTER_AREA)
            matrix = record.matrix * scale  # source frame -> crop: scaling the crop scales both rows
            moved = dataclasses.replace(record, crop_landmarks=record.crop_landmarks * scale, matrix=matrix)
            part.commit_frames(record.source, [(moved, crop)], record.frame + 1)
    return len(records)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def tracked_size() -> int:
    """Bytes of the repository's tracked files, which travel with the carry folder."""
    root = Path(__file__).resolve().parents[1]
    names = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.split(b"\0")
    paths = [root / name.decode() for name in names if name]
    return sum(path.stat().st_size for path in paths if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("carry", type=Path)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parents[2] / "quality-work",
                        help="bench/quality.py's work folder (holds a-train, a-held, b-train, b-held)")
    parser.add_argument("--every", type=int, default=2, help="keep every N-th training face")
    parser.add_argument("--pool", type=Path, help="also carry this faceset of many people (the pair's clips not in "
                                                  "it), for bench/gpu.sh part 4's base")
    parser.add_argument("--pool-every", type=int, default=8, help="keep every N-th face of --pool")
    args = parser.parse_args()

    wheels = args.carry / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d",
                    str(wheels), *specs], check=True)
    for part in ("a-train", "b-train", "a-held", "b-held"):
        source = args.work / part
        if not (source / "faceset.sqlite").is_file():
            sys.exit(f"{source}: missing; run bench/quality.py once to extract and split the clips")
        count = scaled_faceset(source, args.carry / "facesets" / part, RESOLUTION,
                               args.every if part.endswith("train") else 1)
        print(f"{part}: {count} faces at {RESOLUTION} px")
    pool = args.carry / "facesets" / "pool"
    if args.pool:
        count = scaled_faceset(args.pool, pool, RESOLUTION, args.pool_every)
        print(f"pool: {count} faces at {RESOLUTION} px")
    else:
        shutil.rmtree(pool, ignore_errors=True)  # a pool left by an earlier build would travel and count
    size, repository = folder_size(args.carry), tracked_size()
    print(f"{args.carry}: {size / 2**20:.1f} MiB, with the repository's {repository / 2**20:.1f} MiB "
          f"(limit {LIMIT / 2**20:.0f} MiB together)")
    if size + repository > LIMIT:
        sys.exit("too large: raise --every (or --pool-every)")


if __name__ == "__main__":
    main()
