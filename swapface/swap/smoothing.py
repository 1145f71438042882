"""Temporal smoothing of landmarks: the One-Euro filter (Casiez, Roussel, Vogel, CHI 2012).

A low-pass filter whose cut-off rises with speed: still faces are held steady (no jitter from the
landmark detector), moving faces and quick expressions follow with little lag.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over arrays (e.g. 68x2 landmarks), with per-element adaptive cut-off.

    `min_cutoff` (Hz) sets the smoothing of a still signal (lower = steadier); `beta` how fast the
    cut-off rises with speed (higher = less lag). Speed is measured in units of `scale` per second
    (e.g. face sizes per second), so the same settings suit small and large faces.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = self._t = None

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._dx is None or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x, np.zeros_like(x), t
            return x
        dt = t - self._t
        dx = (x - self._x) / (dt * scale)
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        tau = 1.0 / (2.0 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x


def landmark_filter(strength: float) -> OneEuroFilter | None:
    """The filter for a `--smooth` strength (0 = off, 1 = default; higher = steadier, more lag)."""
    if strength <= 0:
        return None
    return OneEuroFilter(min_cutoff=1.5 / strength, beta=8.0 / strength, d_cutoff=1.0)
