"""Evaluation outputs: a JSON file for machines and a self-contained HTML report for people.

The HTML embeds its plots and thumbnails as base64 PNG and references nothing outside itself, so it
opens offline, can be mailed or archived as one file, and never makes a network request.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from swapface.atomic import atomic_write_text, check_folder_writable
from swapface.errors import InputError
from swapface.eval.evaluate import METRICS, EvalResult, Strip
from swapface.eval.heldout import DirectionScores, headline
from swapface.eval.metrics import SAME_PERSON_DISTANCE, SEAM_PARTS, Summary

FORMAT = "swapface-eval"
FORMAT_VERSION = 1
JSON_NAME = "eval.json"
HTML_NAME = "report.html"
STRIP_COLUMNS = ("source", "swapped", "mask (green), seam band (red)", "difference x4")


# -- JSON ------------------------------------------------------------------------------------------

def _finite(value: object) -> object:
    """JSON has no NaN/inf: unmeasured values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def _summary_dict(summary: Summary, unit: str, higher_is_better: bool) -> dict:
    return {**summary.to_dict(), "unit": unit, "higher_is_better": higher_is_better}


def video_json(result: EvalResult) -> dict:
    per_frame = [{**dataclasses.asdict(f), "flicker_excess": f.flicker_excess} for f in result.frames]
    return {
        "source": result.source, "swapped": result.swapped, "target": result.target,
        "original": result.original,  # null: the original identity is the source frames' own faces
        "options": dataclasses.asdict(result.options),
        "frames": {"total": len(result.frames), "with_face": result.frames_with_face},
        "identity": {"closer_to_target": result.closer_to_target, "same_person_distance": SAME_PERSON_DISTANCE},
        "flicker_ratio": result.flicker_ratio,
        "summary": {m.key: _summary_dict(result.summaries[m.key], m.unit, m.higher_is_better) for m in METRICS},
        "expression": result.expression.to_dict() if result.expression else None,
        "sharpness": result.sharpness,
        "light_regions": result.light_regions,
        "per_frame": per_frame,
        "seconds": result.seconds,
    }


def direction_json(scores: DirectionScores) -> dict:
    summaries = scores.summaries()
    units = {"d_target": "dlib 128-D", "d_original": "dlib 128-D", "nme": "x inter-ocular", "psnr": "dB", "ssim": ""}
    return {
        "direction": scores.name, "kind": "reconstruction" if scores.is_reconstruction else "swap",
        "faceset": scores.faceset, "faces": len(scores.nme), "closer_to_target": scores.closer_to_target,
        "pooled_psnr": scores.pooled_psnr,
        "summary": {k: _summary_dict(v, units[k], k in ("d_original", "psnr", "ssim")) for k, v in summaries.items()},
        "headline": headline(scores),
        "expression": scores.expression.to_dict() if scores.expression else None,
        "sharpness": scores.sharpness,
        "light": scores.light_summary(),
        "per_face": {"d_target": scores.d_target, "d_original": scores.d_original, "nme": scores.nme,
                     "psnr": scores.psnr, "ssim": scores.ssim},
    }


def to_json(video: EvalResult | None, held_out: list[DirectionScores] | None) -> dict:
    return _finite({
        "format": FORMAT, "version": FORMAT_VERSION,
        "video": video_json(video) if video is not None else None,
        "held_out": [direction_json(s) for s in held_out] if held_out else None,
    })


# -- HTML --------------------------------------------------------------------------------------------

def _png(image: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return base64.b64encode(data.tobytes()).decode("ascii")


def _figure_png(figure: Figure) -> str:
    """PNG of a figure. Figures are made without pyplot: no global state, no GUI backend needed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _series(result: EvalResult, key: str) -> tuple[np.ndarray, np.ndarray]:
    frames = np.array([f.frame for f in result.frames])
    values = np.array([getattr(f, key) for f in result.frames], np.float64)
    return frames, values


def _plot(result: EvalResult, keys: list[tuple[str, str]], ylabel: str, title: str,
          threshold: tuple[float, str] | None = None) -> str:
    figure = Figure(figsize=(10, 3))
    axes = figure.subplots()
    for key, label in keys:
        frames, values = _series(result, key)
        axes.plot(frames, values, label=label, linewidth=1.3, marker="." if len(frames) < 80 else None)
    if threshold is not None:
        axes.axhline(threshold[0], color="grey", linestyle="--", linewidth=1, label=threshold[1])
    axes.set_xlabel("frame")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return _figure_png(figure)


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _summary_table(result: EvalResult) -> str:
    rows = []
    for m in METRICS:
        s = result.summaries[m.key]
        better = "higher" if m.higher_is_better else "lower"
        rows.append(f"<tr><td>{html.escape(m.label)}</td><td>{html.escape(m.unit)}</td><td>{better}</td>"
                    f"<td>{_number(s.mean)}</td><td>{_number(s.median)}</td><td>{_number(s.worst5)}</td>"
                    f"<td>{s.count}</td></tr>")
    return ("<table><tr><th>metric</th><th>unit</th><th>better</th><th>mean</th><th>median</th>"
            "<th>worst 5%</th><th>frames</th></tr>" + "".join(rows) + "</table>")


def _strip_html(strip: Strip, result: EvalResult) -> str:
    scores = result.frames[strip.frame]
    caption = (f"frame {strip.frame} ({strip.time:.2f} s), {html.escape(strip.reason)}: "
               f"d(target) {_number(scores.d_target)}, d(original) {_number(scores.d_original)}, "
               f"NME {_number(scores.nme)}, seam {_number(scores.seam_colour, 1)}, "
               f"extra change {_number(scores.flicker_excess, 2)}")
    cells = "".join(f"<td>{_img(_png(image), name)}</td>" for image, name in zip(strip.images, STRIP_COLUMNS,
                                                                                  strict=True))
    return f'<div class="strip"><p>{caption}</p><table><tr>{cells}</tr></table></div>'


def _video_html(result: EvalResult) -> str:
    original = html.escape(result.original) if result.original else "the source frames' own faces"
    identity_plot = _plot(result, [("d_target", "to target"), ("d_original", "to original")],
                          "distance", "Identity of the swapped face",
                          (SAME_PERSON_DISTANCE, "same-person threshold"))
    nme_plot = _plot(result, [("nme", "landmark NME")], "NME", "Expression kept: landmarks vs source")
    pose_plot = _plot(result, [("yaw_diff", "yaw"), ("pitch_diff", "pitch"), ("roll_diff", "roll")],
                      "degrees", "Head pose difference vs source")
    flicker_plot = _plot(result, [("change_source", "source"), ("change_swapped", "swapped")],
                         "mean |change| (levels)", "Frame-to-frame change inside the face")
    seam_plot = _plot(result, [("seam_colour", "colour step (levels)"),
                               *((f"seam_{part}", f"colour step, {part}") for part in SEAM_PARTS),
                               ("seam_gradient", "gradient (levels/px)")], "discontinuity", "Seam at the mask edge")
    columns = " | ".join(STRIP_COLUMNS)
    strips = "".join(_strip_html(s, result) for s in result.strips)
    return f"""
<h2>Swap</h2>
<table class="facts">
<tr><td>source</td><td>{html.escape(result.source)}</td></tr>
<tr><td>swapped</td><td>{html.escape(result.swapped)}</td></tr>
<tr><td>target identity</td><td>{html.escape(result.target)}</td></tr>
<tr><td>original identity</td><td>{original}</td></tr>
<tr><td>frames</td><td>{len(result.frames)} ({result.frames_with_face} with a face)</td></tr>
<tr><td>closer to target than to original</td><td><b>{result.closer_to_target:.1%}</b> of frames with a face</td></tr>
<tr><td>flicker ratio</td><td><b>{_number(result.flicker_ratio)}</b> (1.0 = as steady as the source)</td></tr>
{_expression_rows(result)}
<tr><td>sharpness</td><td><b>{_number(result.sharpness, 2)}</b> (high-frequency energy of the swapped face against
the source face it replaces, same crop; 1.0 = as sharp)</td></tr>
<tr><td>skin light vs source</td><td>{_light_text(result.light_regions)}</td></tr>
<tr><td>time</td><td>{result.seconds:.1f} s</td></tr>
</table>
{_summary_table(result)}
<h3>Identity</h3>{_img(identity_plot, "identity distances per frame")}
<h3>Expression and pose</h3>{_img(nme_plot, "landmark NME per frame")}{_img(pose_plot, "pose difference per frame")}
<h3>Temporal stability</h3>{_img(flicker_plot, "frame-to-frame change per frame")}
<h3>Seams</h3>{_img(seam_plot, "seam scores per frame")}
<h3>Frames</h3><p class="note">Aligned face crops, each row: {html.escape(columns)}.</p>{strips}
"""


def _expression_rows(result: EvalResult) -> str:
    e = result.expression
    if e is None:
        return ""
    r = " ".join(f"{name} {_number(value, 2)}" for name, value in e.correlation.items())
    return (f"<tr><td>expression follows the source</td><td>Pearson r: {r}; blinks carried "
            f"{_number(e.blink_agreement, 2)}; dynamic NME <b>{_number(e.dynamic_nme)}</b> "
            f"(0 = moves exactly like the source)</td></tr>")


def _light_text(regions: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{name}: brightness {_number(v['brightness'], 1)}, colour {_number(v['colour'], 1)}"
                     for name, v in regions.items()) + " (LAB levels)"


def _held_out_html(scores: list[DirectionScores]) -> str:
    figure = Figure(figsize=(10, 3))
    axes = figure.subplots(1, 2)
    names = [s.name for s in scores]
    axes[0].boxplot([s.d_target for s in scores])
    axes[0].axhline(SAME_PERSON_DISTANCE, color="grey", linestyle="--", linewidth=1)
    axes[0].set_ylabel("distance to target identity")
    axes[1].boxplot([s.nme for s in scores])
    axes[1].set_ylabel("landmark NME vs input")
    for axis in axes:
        axis.set_xticks(range(1, len(names) + 1), names)
        axis.grid(alpha=0.3)
    plot = _figure_png(figure)
    rows, examples = [], []
    for s in scores:
        summary = s.summaries()
        psnr_cells = (f"<td>{_number(s.pooled_psnr, 2)}</td><td>{_number(summary['psnr'].worst5, 2)}</td>"
                      f"<td>{_number(summary['ssim'].mean)}</td><td>{_number(summary['ssim'].worst5)}</td>"
                      if s.is_reconstruction else "<td></td>" * 4)
        closer = s.closer_to_target
        rows.append(f"<tr><td>{s.name}</td><td>{html.escape(s.faceset)}</td><td>{len(s.nme)}</td>"
                    f"<td>{'n/a' if not math.isfinite(closer) else f'{closer:.1%}'}</td>"
                    f"<td>{_number(summary['d_target'].mean)}</td><td>{_number(summary['d_original'].mean)}</td>"
                    f"<td>{_number(summary['nme'].mean)}</td><td>{_number(summary['nme'].worst5)}</td>"
                    f"{psnr_cells}</tr>")
        pairs = "".join(f"<td>{_img(_png(a), 'held-out face')}{_img(_png(b), s.name)}</td>" for a, b in s.examples)
        examples.append(f"<p>{s.name}: held-out face | output</p><table><tr>{pairs}</tr></table>")
    quality_rows = []
    for s in scores:
        h = headline(s)
        cells = "".join(f"<td>{_number(h[key], digits)}</td>" for key, digits in HEADLINE_CELLS)
        quality_rows.append(f"<tr><td>{s.name}</td>{cells}</tr>")
    return f"""
<h2>Model on held-out faces</h2>
<table><tr><th>direction</th><th>faceset</th><th>faces</th><th>closer to target</th><th>d(target) mean</th>
<th>d(other) mean</th><th>NME mean</th><th>NME worst 5%</th><th>PSNR pooled (dB)</th><th>PSNR worst 5%</th>
<th>SSIM mean</th><th>SSIM worst 5%</th></tr>{''.join(rows)}</table>
<p class="note">Expression moving with the input (Pearson r of mouth opening, eye opening and brow height
over the held-out faces in clip order; blinks: frames with closed eyes in both / in either; dynamic NME:
inner landmarks minus their own mean, input against output), sharpness (high-frequency energy against real
faces of the person shown, 1.0 = as sharp) and light (mean |brightness| and colour step against the input
over forehead, cheeks and chin, LAB levels).</p>
<table><tr><th>direction</th><th>dynamic NME</th><th>mouth r</th><th>eyes r</th><th>brows r</th><th>blinks</th>
<th>sharpness</th><th>brightness step</th><th>colour step</th></tr>{''.join(quality_rows)}</table>
{_img(plot, "identity distance and NME per direction")}
{''.join(examples)}
"""


HEADLINE_CELLS = (("dyn_nme", 3), ("mouth_corr", 2), ("eye_corr", 2), ("brow_corr", 2), ("blink", 2),
                  ("sharpness", 2), ("light_brightness", 1), ("light_colour", 1))

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1150px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }
th { background: #eee; }
.strip { display: inline-block; vertical-align: top; width: 545px; margin-right: 8px; }
.strip table td { width: 132px; border: none; padding: 2px; }
.strip p { margin: 12px 0 2px; font-size: 12px; min-height: 30px; }
.note { color: #555; font-size: 13px; }
"""

NOTES = """
<p class="note">Identity: Euclidean distance of dlib's 128-D face descriptor (same person below about 0.6).
NME: mean landmark distance between swapped and source face, divided by the source's inter-ocular
distance. Pose: yaw/pitch/roll from the landmarks by solvePnP on a generic 3D face. Frame-to-frame change:
mean absolute change inside the face hull between consecutive frames, both cropped with the source's
alignment so head motion cancels; the flicker ratio is the sum over the swapped video divided by the sum
over the source (above 1: the swap adds flicker or jitter; below 1: the swapped face changes less than the
source did, often lost detail or expression). Seam: colour step and gradient of (swapped - source) along
the face-hull boundary, 0 when nothing was composited. Worst 5%: mean of the worst 5% of frames.</p>
"""


def render_html(video: EvalResult | None, held_out: list[DirectionScores] | None) -> str:
    body = ""
    if video is not None:
        body += _video_html(video)
    if held_out:
        body += _held_out_html(held_out)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>swapface evaluation</title>
<style>{STYLE}</style></head>
<body><h1>swapface evaluation</h1>{NOTES}{body}</body></html>
"""


def write_report(output_dir: Path, video: EvalResult | None,
                 held_out: list[DirectionScores] | None) -> tuple[Path, Path]:
    """Write eval.json and report.html into `output_dir`, each atomically; returns their paths."""
    output_dir = Path(output_dir)
    check_folder_writable(output_dir)
    json_path, html_path = output_dir / JSON_NAME, output_dir / HTML_NAME
    try:
        atomic_write_text(json_path, json.dumps(to_json(video, held_out), indent=1, allow_nan=False) + "\n")
        atomic_write_text(html_path, render_html(video, held_out))
    except OSError as exc:
        raise InputError(output_dir, f"cannot write the report ({exc.strerror or exc})") from None
    return json_path, html_path
