"""Machine facts recorded beside every benchmark figure (CPU, threads, library versions)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

DEFAULT_PACKAGES = ("numpy", "torch", "pandas")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The ``model name`` line of ``/proc/cpuinfo``, else :func:`platform.processor`."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    """Installed distribution version, or ``"not installed"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(packages: tuple[str, ...] | list[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """CPU model, usable/total hardware threads, load average, OS, Python, ``packages``.

    The load average is there because this machine is shared: a figure taken while other
    jobs ran is slower than the hardware, and the reader should know it.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    facts = {
        "CPU": cpu_model(),
        "CPU threads (usable / total)": f"{usable} / {os.cpu_count()}",
        "load average (1, 5, 15 min) at write time": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }
    for name in packages:
        facts[name] = package_version(name)
    return facts


def facts_markdown(facts: dict[str, str], title: str = "## Machine") -> list[str]:
    """Markdown lines (a heading and one bullet per fact)."""
    return [title, "", *(f"- {key}: {value}" for key, value in facts.items())]
