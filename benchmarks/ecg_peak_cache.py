"""XQRS R peaks of every CinC 2017 recording: detected and cached once, then read back.

Runs in a fresh temporary cache folder (``$MEDSEQ_CACHE``), so the first pass always
detects; the second pass is what every later ``medseq train`` of a beat configuration pays.

    nice -n 5 .venv/bin/python benchmarks/ecg_peak_cache.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from medseq.datasets import cinc2017
from medseq.features.signals import peak_cache
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.paths import dataset_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-records", type=int, default=None, help="first N recordings only")
    args = parser.parse_args()
    data = cinc2017.read(dataset_dir("physionet2017"), max_records=args.max_records)
    with tempfile.TemporaryDirectory() as folder:
        os.environ[peak_cache.CACHE_ENV] = folder
        out = {"recordings": len(data.signals)}
        for attempt in ("cold_detect_and_write", "warm_read"):
            featurizer = BeatFeaturizer(peaks="xqrs")  # empty in-memory cache each time
            wall, cpu = time.perf_counter(), time.process_time()
            for signal in data.signals.values():
                featurizer.peak_positions(signal)
            out[f"{attempt}_wall_s"] = round(time.perf_counter() - wall, 2)
            out[f"{attempt}_cpu_s"] = round(time.process_time() - cpu, 2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
