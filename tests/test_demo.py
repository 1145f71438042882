"""The README's main job: the demo runs the whole pipeline on the bundled public-domain portraits."""

from __future__ import annotations

from swapface.demo import PRESET, bundled_model, run_demo
from swapface.media import probe
from swapface.media.writer import read_synthetic_tag
from swapface.model.config import preset
from swapface.modeldir import load_model


def test_bundled_demo_model_loads():
    model, config = load_model(bundled_model())
    assert config == preset(PRESET) and config.coverage == "whole"  # the preset the demo fine-tunes
    assert sum(p.numel() for p in model.parameters()) > 100_000


def test_demo_swaps_the_astronaut_clip(tmp_path):
    result = run_demo(tmp_path / "demo", steps=3, frames=12, say=lambda _: None)
    source, swapped = probe(result.clip), probe(result.swapped)
    assert swapped.frame_count == source.frame_count == 12
    assert (swapped.width, swapped.height) == (source.width, source.height)
    assert swapped.has_audio
    assert read_synthetic_tag(result.swapped)
    assert result.swap.frames_swapped == 12
    assert result.training.step == 3
    assert result.report.is_file() and result.report.stat().st_size > 10_000
    assert result.evaluation.frames_with_face == 12
