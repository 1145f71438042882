"""Load on `swapface serve` while a training job runs: 50 clients polling a job's status and 5 uploading
videos (resumable chunks), against a baseline of 1 poller and 1 uploader on the same server and job.

    python bench/serve_load.py [--pollers 50 --uploaders 5 --seconds 30]

Prints a markdown table for docs/benchmarks.md. The clients run in this process (asyncio + httpx), on
the same cores as the server and the training worker, so the numbers include that competition.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.serve_helpers import TOKEN, Server, submit, upload, wait_for  # noqa: E402

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
CHUNK = 4 * 1024 * 1024
POLL_PAUSE = 0.1  # seconds a polling client waits between requests (a UI polls every 1-2 s)


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    uploaded: int = 0
    uploads: int = 0
    errors: list[str] = field(default_factory=list)


async def poll(client: httpx.AsyncClient, job: str, until: float, load: Load) -> None:
    while time.monotonic() < until:
        start = time.perf_counter()
        response = await client.get(f"/api/jobs/{job}")
        load.latencies.append(time.perf_counter() - start)
        if response.status_code != 200 or response.json()["state"] != "running":
            load.errors.append(f"status {response.status_code}: {response.text[:80]}")
        await asyncio.sleep(POLL_PAUSE)


async def send(client: httpx.AsyncClient, video: bytes, until: float, load: Load) -> None:
    while time.monotonic() < until:
        started = await client.post("/api/uploads", json={"name": "load.mp4", "size": len(video)})
        if started.status_code != 201:
            load.errors.append(f"upload start {started.status_code}")
            continue
        upload_id, offset = started.json()["id"], 0
        while offset < len(video):
            response = await client.patch(f"/api/uploads/{upload_id}", content=video[offset:offset + CHUNK],
                                          headers={"Upload-Offset": str(offset)})
            if response.status_code != 200:
                load.errors.append(f"chunk {response.status_code}: {response.text[:80]}")
                break
            offset = response.json()["offset"]
        else:
            load.uploads += 1
            load.uploaded += len(video)


async def run(url: str, job: str, pollers: int, uploaders: int, seconds: float, video: bytes) -> tuple[Load, float]:
    load = Load()
    limits = httpx.Limits(max_connections=pollers + uploaders + 5)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
                                 limits=limits) as client:
        until = time.monotonic() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(poll(client, job, until, load) for _ in range(pollers)),
                             *(send(client, video, until, load) for _ in range(uploaders)))
        return load, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--uploaders", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--video", type=Path, default=VIDEOS / "lp_d0.mp4")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="serve-load-"))
    server = Server(root / "data").start()
    try:
        with server.client() as client:
            extracts = [submit(client, "extract", {"files": [upload(client, VIDEOS / clip)]},
                               {"size": 64, "min_face": 40}) for clip in ("lp_d1.mp4", "lp_d2.mp4")]
            train = submit(client, "train", {"a": extracts[0], "b": extracts[1]},
                           {"preset": "tiny", "batch_size": 4, "time_limit": 60, "log_every": 5})
            wait_for(client, train, until=lambda job: job["info"].get("step", 0) >= 5, timeout=600)
        video = args.video.read_bytes()
        rows = []
        for name, pollers, uploaders in (("baseline", 1, 1), ("load", args.pollers, args.uploaders)):
            load, elapsed = asyncio.run(run(server.url, train, pollers, uploaders, args.seconds, video))
            rows.append((name, pollers, uploaders, load, elapsed))
        with server.client() as client:
            step = client.get(f"/api/jobs/{train}").json()["info"]["step"]
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(f"{platform.node()}: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}; training the tiny preset "
          f"alongside (step {step} at the end); upload: {args.video.name} ({len(video) / 1e6:.2f} MB)")
    print()
    print("| run | pollers | uploaders | status requests | p50 ms | p99 ms | uploads | upload MB/s | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    base_p99 = None
    for name, pollers, uploaders, load, elapsed in rows:
        p50, p99 = percentile(load.latencies, 50) * 1000, percentile(load.latencies, 99) * 1000
        base_p99 = base_p99 or p99
        print(f"| {name} | {pollers} | {uploaders} | {len(load.latencies)} | {p50:.1f} | {p99:.1f} "
              f"({p99 / base_p99:.1f}x) | {load.uploads} | {load.uploaded / elapsed / 1e6:.2f} | {len(load.errors)} |")
        for error in load.errors[:3]:
            print(f"  error: {error}")


if __name__ == "__main__":
    main()
