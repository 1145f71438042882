"""Shared fixtures: the real clips and stills in ../shared/data, and small facesets built from them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from swapface.faces import AlignSpec
from swapface.faceset import Faceset
from swapface.faceset.extract import ExtractOptions, extract
from swapface.media.scheduling import keep_scheduling, realtime_threads

# Once for the whole suite: small models gain nothing from threads, and on a shared 2-core machine
# spinning OpenMP threads made steps up to 10x slower than one thread.
torch.set_num_threads(1)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEOS = DATA / "videos"
STILLS = DATA / "stills"


def _small_faceset(root: Path, clip: str, frames: int = 120, every: int = 2, size: int = 128) -> Path:
    out = root / Path(clip).stem
    extract([VIDEOS / clip], out, ExtractOptions(spec=AlignSpec(size, "whole"), every=every,
                                                 max_frames=frames, workers=2))
    return out


@pytest.fixture(scope="session", autouse=True)
def config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Swaps sign their outputs with a local identity made on first use in the user's config folder:
    in tests, a scratch one."""
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield Path(os.environ["XDG_CONFIG_HOME"])
    if old is None:
        del os.environ["XDG_CONFIG_HOME"]
    else:
        os.environ["XDG_CONFIG_HOME"] = old


@pytest.fixture(autouse=True)
def no_real_time_threads() -> Iterator[None]:
    """A test that leaves a thread of this process real-time (an encoder opened without keep_scheduling, see
    swapface/media/scheduling.py) fails by name, and its threads are put back: left as they are, they starve
    the processes of every later test (a server's jobs, a browser) until CI's limit ends the run."""
    with keep_scheduling():
        yield
        left = realtime_threads()
    assert not left, f"threads {left} of the test process were left real-time (SCHED_FIFO or SCHED_RR)"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"real face data missing at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def faceset_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Identity A: 60 faces (128 px, whole coverage) from the first 4 s of lp_d6.mp4."""
    return _small_faceset(tmp_path_factory.mktemp("facesets"), "lp_d6.mp4")


@pytest.fixture(scope="session")
def faceset_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Identity B: 60 faces (128 px, whole coverage) from the first 4 s of lp_d9.mp4."""
    return _small_faceset(tmp_path_factory.mktemp("facesets"), "lp_d9.mp4")


def open_faceset(path: Path) -> Faceset:
    return Faceset.open(path)
