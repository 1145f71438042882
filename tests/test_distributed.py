"""Data-parallel training (with the PatchGAN on): two gloo processes, under torchrun or started by our own
launcher (the platform's training job), end with identical weights; a rank that dies on start stops the
others with its reason."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from swapface.modeldir import WEIGHTS_FILE

_RANK_SCRIPT = """
import os, sys
import torch
from safetensors.torch import save_file
from swapface.train.loop import train
from swapface.train.options import TrainOptions
result = train(sys.argv[1], sys.argv[2], sys.argv[3], TrainOptions(preset="tiny", batch_size=4, steps=6,
               save_every=3, log_every=1, preview_every=1000, snapshot_every=0, device="cpu", gan_weight=0.1))
state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
save_file(state, os.path.join(sys.argv[4], f"rank{os.environ['RANK']}.safetensors"))
"""


def test_two_gloo_ranks_end_with_identical_weights(faceset_a, faceset_b, tmp_path) -> None:
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    model_dir = tmp_path / "model"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
         str(faceset_a), str(faceset_b), str(model_dir), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "4 per identity per rank x 2 rank(s) = 8 per identity" in run.stdout
    assert run.stdout.count("effective batch") == 1  # only rank 0 reports
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    saved = load_file(model_dir / WEIGHTS_FILE)
    initial_changed = False
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), name
        assert torch.equal(tensor, saved[name]), name
        initial_changed |= bool(tensor.abs().sum() > 0) and name.endswith("conv2.weight")
    assert initial_changed  # zero-initialised residual branches moved: the ranks really trained


_LAUNCH_SCRIPT = """
import sys
from swapface.errors import SwapfaceError
from swapface.train.local_ranks import train_on_devices
from swapface.train.options import TrainOptions
options = TrainOptions(preset="tiny", batch_size=4, steps=4, save_every=2, log_every=1, preview_every=1000,
                       snapshot_every=0)
try:
    result = train_on_devices(sys.argv[1], sys.argv[2], sys.argv[3], options, sys.argv[4].split(","))
except SwapfaceError as error:
    sys.exit(f"error: {error}")
print("trained to step", result.step)
"""


def _launch(faceset_a, faceset_b, model_dir, devices: str, tmp_path) -> subprocess.CompletedProcess:
    script = tmp_path / "launch.py"
    script.write_text(_LAUNCH_SCRIPT)
    # the timeout only guards the suite against a hang (the old rendezvous waited 30 minutes)
    return subprocess.run([sys.executable, str(script), str(faceset_a), str(faceset_b), str(model_dir), devices],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_our_launcher_trains_two_ranks_and_a_rank_that_dies_on_start_stops_the_other(faceset_a, faceset_b,
                                                                                         tmp_path) -> None:
    run = _launch(faceset_a, faceset_b, tmp_path / "good", "cpu,cpu", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "4 per identity per rank x 2 rank(s) = 8 per identity" in run.stdout
    assert "trained to step 4" in run.stdout and (tmp_path / "good" / WEIGHTS_FILE).is_file()
    # rank 1 asks for a GPU that is not there and exits before it reaches the rendezvous
    run = _launch(faceset_a, faceset_b, tmp_path / "bad", "cpu,cuda:99", tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == "error: training rank 1 of 2 ended with exit code 1"
    assert not (tmp_path / "bad").exists()  # a new run that failed leaves no folder
