"""`swapface serve --ray`: the platform's jobs run as tasks on a Ray cluster, with the same states and
outputs as local workers (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapface.media.writer import read_synthetic_tag
from tests.ray_helpers import ray_cluster
from tests.serve_helpers import submit, upload, wait_for
from tests.test_serve_api import CLIP_A, CLIP_B, EXTRACT, make_client


@pytest.mark.slow
def test_jobs_run_as_ray_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ray_cluster(port=6393) as (address, env):
        for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED"):
            monkeypatch.setenv(key, env[key])
        with make_client(tmp_path / "data", run_jobs=True, ray=address) as c:
            a, b = upload(c, CLIP_A), upload(c, CLIP_B)
            ea, eb = submit(c, "extract", {"files": [a]}, EXTRACT), submit(c, "extract", {"files": [b]}, EXTRACT)
            train = submit(c, "train", {"a": ea, "b": eb}, {"preset": "tiny", "steps": 10, "batch_size": 4,
                                                            "log_every": 5, "gpus": 2})  # 2 ranks in one task
            swap = submit(c, "swap", {"model": train, "video": a})
            extracted = wait_for(c, ea)
            assert extracted["state"] == "done" and extracted["outputs"]["faces"] == 16, extracted["error"]
            trained = wait_for(c, train, timeout=900)
            assert trained["state"] == "done" and trained["outputs"] == {"step": 10}, trained
            assert any("x 2 rank(s)" in m for m in trained["info"]["messages"]), trained
            swapped = wait_for(c, swap, timeout=900)
            assert swapped["state"] == "done", swapped
            out = tmp_path / "swapped.mp4"
            out.write_bytes(c.get(f"/api/files/{swapped['outputs']['file']}").content)
            assert read_synthetic_tag(out)
            assert isinstance(c.app.state.scheduler.running, dict) and c.app.state.scheduler.ray
