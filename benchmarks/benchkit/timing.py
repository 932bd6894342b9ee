"""Throughput timing shared by medseq's and the peers' workers (standard library only)."""

from __future__ import annotations

import resource
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
    steps, their total seconds, the median seconds of one step (robust to the other jobs on
    a shared machine, which slow some steps a lot and most not at all) and the CPU seconds
    per wall second of the timed loop (:func:`cpu_seconds`).
    """
    for i in range(warmup):
        step(i)
    times: list[float] = []
    cpu0 = cpu_seconds()
    start = time.perf_counter()
    while len(times) < max_steps and (
        len(times) < min_steps or time.perf_counter() - start < min_seconds
    ):
        t0 = time.perf_counter()
        step(warmup + len(times))
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {
        "steps": len(times),
        "seconds": sum(times),
        "median_step_s": statistics.median(times),
        "cpu_per_wall": (cpu_seconds() - cpu0) / wall,
    }


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all its threads together.

    CPU seconds per wall second over a timed loop tell how many cores a library really
    used (above 1.0 with "1 thread" means it ran helper threads), and, below the thread
    count, how much of the time other jobs held the cores.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
