"""A real Ray cluster for tests: a head on 127.0.0.1 and a second node joining it, as `ray start` builds one."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def ray_cluster(port: int = 6391) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield the cluster's address and the environment its clients need."""
    ray = [str(Path(sys.executable).parent / "ray")]
    # Ray turns token authentication on for local clusters: every process of the test's cluster shares one
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.run([*ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                           "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert head.returncode == 0, head.stderr
    try:
        node = subprocess.run([*ray, "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1",
                               "--num-cpus=1"], capture_output=True, text=True, env=env, timeout=180)
        assert node.returncode == 0, node.stderr
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([*ray, "stop", "--force"], capture_output=True, env=env, timeout=120)
