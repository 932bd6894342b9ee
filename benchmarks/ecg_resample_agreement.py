"""Beat values of one MIT-BIH record at 360 Hz and after downsampling to 128 Hz, compared.

Why: ``mitbih_svdb`` trains on MIT-BIH resampled to SVDB's 128 Hz; this prints, for every
per-beat value of the ``mitbih-svdb-beats.toml`` features (and of the optional shape
features), its spread and how far the two rates disagree.

    python benchmarks/ecg_resample_agreement.py 119
"""

from __future__ import annotations

import sys

import numpy as np

from medseq.datasets import mitbih_svdb
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.paths import dataset_dir
from medseq.sources import wfdb_records

OPTION_SETS = {
    "config": {"lead": "ECG1", "morphology": "none", "local_ratios": False},
    "shape": {"lead": "ECG1", "morphology": "none", "local_ratios": False, "qrs_shape": True,
              "second_lead": True, "record_relative": True},
}  # fmt: skip


def main() -> None:
    record = sys.argv[1] if len(sys.argv) > 1 else "119"
    raw = wfdb_records.read_record(dataset_dir("mitdb_full"), record)
    at_360 = mitbih_svdb.harmonise(raw, "mitbih", fs_hz=raw.fs_hz)
    at_128 = mitbih_svdb.harmonise(raw, "mitbih")
    for label, options in OPTION_SETS.items():
        a, _ = BeatFeaturizer(**options).raw_features(at_360)
        b, _ = BeatFeaturizer(**options).raw_features(at_128)
        print(f"\n{label}: record {record}, {len(a)} beats")
        print(f"{'value':50s} {'sd':>7s} {'max|d|':>7s} {'p99|d|':>7s} {'r':>7s}")
        for j, name in enumerate(BeatFeaturizer(**options).scalar_names):
            d, sd = np.abs(a[:, j] - b[:, j]), float(a[:, j].std())
            r = np.corrcoef(a[:, j], b[:, j])[0, 1] if sd > 0 else float("nan")
            print(f"{name:50s} {sd:7.4f} {d.max():7.4f} {np.quantile(d, 0.99):7.4f} {r:7.4f}")


if __name__ == "__main__":
    main()
