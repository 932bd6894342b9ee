"""Request counts, latencies and gauges in the Prometheus text format (version 0.0.4).

Labels carry route templates (``/v1/patients/{patient_id}``), methods and status codes:
never a patient identifier or a value.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

#: Latency histogram buckets in seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Thread-safe counters and histograms, rendered by :meth:`render`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._sums: dict[str, float] = defaultdict(float)
        self._observations: dict[str, int] = defaultdict(int)
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._sections: list[Callable[[], list[str]]] = []

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(route, method, status)] += 1
            self._buckets[route][bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sums[route] += seconds

    def count_observations(self, outcome: str, n: int) -> None:
        if n:
            with self._lock:
                self._observations[outcome] += n

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a gauge read at render time."""
        self._gauges[name] = (help_text, read)

    def section(self, read: Callable[[], list[str]]) -> None:
        """Register lines of other metric families (e.g. drift), read at render time."""
        self._sections.append(read)

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP medseq_requests_total HTTP requests by route template, method, status.",
                "# TYPE medseq_requests_total counter",
            ]
            for (route, method, status), n in sorted(self._requests.items()):
                lines.append(
                    f'medseq_requests_total{{route="{route}",method="{method}",'
                    f'status="{status}"}} {n}'
                )
            lines += _histogram(self._buckets, self._sums)
            lines += [
                "# HELP medseq_observations_total Observations applied or reported back.",
                "# TYPE medseq_observations_total counter",
            ]
            for outcome, n in sorted(self._observations.items()):
                lines.append(f'medseq_observations_total{{outcome="{outcome}"}} {n}')
        for name, (help_text, read) in sorted(self._gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read()}"]
        for read_lines in self._sections:
            lines += read_lines()
        return "\n".join(lines) + "\n"


def _histogram(buckets: dict[str, list[int]], sums: dict[str, float]) -> list[str]:
    name = "medseq_request_duration_seconds"
    lines = [f"# HELP {name} Request latency by route template.", f"# TYPE {name} histogram"]
    for route, counts in sorted(buckets.items()):
        running = 0
        for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'{name}_bucket{{route="{route}",le="{le}"}} {running}')
        lines.append(f'{name}_sum{{route="{route}"}} {sums[route]:.6f}')
        lines.append(f'{name}_count{{route="{route}"}} {running}')
    return lines
