"""Piecewise-linear curves (efficiency vs power, power limit vs SOC)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Curve:
    """``y(x)`` linear between points, flat outside them. ``xs`` strictly increasing
    (validated by the config layer), at least two points."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    @classmethod
    def of(cls, points: tuple[tuple[float, float], ...]) -> Curve:
        return cls(tuple(p[0] for p in points), tuple(p[1] for p in points))

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, x)
        x0, x1 = xs[i - 1], xs[i]
        y0, y1 = ys[i - 1], ys[i]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    @property
    def points(self) -> tuple[tuple[float, float], ...]:
        return tuple(zip(self.xs, self.ys, strict=True))
