"""Throughput timing shared by medseq's and the peers' workers (standard library only)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_steps(
    step: Callable[[int], None],
    min_seconds: float = 2.0,
    min_steps: int = 5,
    max_steps: int = 300,
    warmup: int = 3,
) -> dict[str, float]:
    """Call ``step(i)`` ``warmup`` times untimed, then until ``min_seconds`` have passed.

    At least ``min_steps`` and at most ``max_steps`` timed calls; returns the number of
    steps, their total seconds and the median seconds of one step (robust to the other
    jobs on a shared machine, which slow some steps a lot and most not at all).
    """
    for i in range(warmup):
        step(i)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_steps and (
        len(times) < min_steps or time.perf_counter() - start < min_seconds
    ):
        t0 = time.perf_counter()
        step(warmup + len(times))
        times.append(time.perf_counter() - t0)
    return {
        "steps": len(times),
        "seconds": sum(times),
        "median_step_s": statistics.median(times),
    }
