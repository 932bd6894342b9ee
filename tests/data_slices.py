"""Small real slices of the shared archives, unpacked into the layouts medseq's readers take.

Plain functions (not fixtures) so that each test module keeps its own fixture, scope and
slice size; import as ``from data_slices import ...`` (``tests/`` is on ``sys.path``
through ``tests/conftest.py``).
"""

from __future__ import annotations

import tarfile
from pathlib import Path


def unpack_synthea(out: Path, n_bundles: int) -> Path:
    """The first ``n_bundles`` patient Bundles of ``synthea_r4.tar.xz`` written to ``out``.

    Streamed from the front of the archive, so only a few MB are decompressed; the
    hospital and practitioner "Information" Bundles are not patients and are passed over.
    """
    from medseq.paths import dataset_dir

    n = 0
    with tarfile.open(dataset_dir("synthea_r4") / "synthea_r4.tar.xz", "r:xz") as tar:
        for member in tar:
            name = Path(member.name).name
            if member.isfile() and name.endswith(".json") and "Information" not in name:
                handle = tar.extractfile(member)
                assert handle is not None
                (out / name).write_bytes(handle.read())
                n += 1
                if n == n_bundles:
                    break
    return out


def unpack_physionet2012(out: Path, n_stays: int, set_name: str = "a") -> Path:
    """The first ``n_stays`` stays of PhysioNet 2012 ``set-{set_name}.tar.gz`` as the folder
    of ``.txt`` files the reader takes (``out/set-a/132539.txt``); that folder."""
    from medseq.paths import dataset_dir

    folder = out / f"set-{set_name}"
    folder.mkdir()
    n = 0
    with tarfile.open(dataset_dir("physionet2012") / f"set-{set_name}.tar.gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".txt"):
                handle = tar.extractfile(member)
                assert handle is not None
                (folder / member.name.rsplit("/", 1)[-1]).write_bytes(handle.read())
                n += 1
                if n == n_stays:
                    break
    return folder


def unpack_physionet2019(
    out: Path,
    n_first: int,
    *,
    scan: int | None = None,
    max_septic: int | None = None,
    sets: str = "AB",
) -> Path:
    """Patients of the PhysioNet 2019 archives (hospital systems ``sets``) in the official
    layout (``out/training_setA/p000001.psv``, ``out/training_setB/...``).

    Per archive: the first ``n_first`` patients, plus every septic one (a last row labelled
    1) among the first ``scan`` (default: all), until ``max_septic`` septic patients are kept
    in all (the first ``n_first`` counted; default: no limit). Reading stops as soon as no
    further patient could be kept, so a small slice reads only the front of each archive.
    """
    from medseq.paths import dataset_dir

    for letter in sets:
        folder = out / f"training_set{letter}"
        folder.mkdir()
        n_septic = 0
        with tarfile.open(dataset_dir("physionet2019") / f"training_set{letter}.tar.gz") as tar:
            for k, member in enumerate(m for m in tar if m.isfile()):
                if k >= n_first and (
                    (scan is not None and k >= scan)
                    or (max_septic is not None and n_septic >= max_septic)
                ):
                    break
                handle = tar.extractfile(member)
                assert handle is not None
                data = handle.read()
                septic = data.rstrip().endswith(b"|1")
                if k < n_first or (septic and (max_septic is None or n_septic < max_septic)):
                    n_septic += septic
                    (folder / member.name.rsplit("/", 1)[-1]).write_bytes(data)
    return out


def write_mitbih_crop(folder: Path, record: str, minutes: float) -> None:
    """The first ``minutes`` of a MIT-BIH record (signals and reference annotations) as a
    WFDB record of its own, in the format of the original (212, gain 200, baseline 1024)."""
    import numpy as np
    import wfdb

    from medseq.paths import dataset_dir
    from medseq.sources import wfdb_records

    raw = wfdb_records.read_record(dataset_dir("mitdb_full"), record)
    n = round(minutes * 60 * raw.fs_hz)
    keep = raw.annotation_samples < n
    wfdb.wrsamp(
        record, fs=raw.fs_hz, units=list(raw.units), sig_name=list(raw.channel_names),
        p_signal=raw.samples[:n].astype(np.float64), fmt=["212", "212"],
        adc_gain=[200.0, 200.0], baseline=[1024, 1024], write_dir=str(folder),
    )  # fmt: skip
    wfdb.wrann(
        record, "atr", raw.annotation_samples[keep],
        symbol=[s for s, k in zip(raw.annotation_symbols, keep, strict=True) if k],
        write_dir=str(folder),
    )  # fmt: skip
