"""Real PhysioNet 2012 stays exported as the flat CSVs of dataset ``flat_icu`` (events,
static, outcomes) with the mapping file that reads them back: the flat path's test data."""

from __future__ import annotations

from pathlib import Path

from data_slices import unpack_physionet2012
from medseq.paths import dataset_dir
from medseq.sources import physionet2012

MAPPING = """
root = "{root}"
[[events]]
path = "events.csv"
subject = "RecordID"
time = "Hours"
time_unit = "hours"
code = "Parameter"
value = "Value"
[static]
path = "static.csv"
subject = "RecordID"
columns = {columns}
[label]
path = "outcomes.csv"
subject = "RecordID"
column = "In-hospital_death"
"""
#: The flat config's features (configs/physionet2012-flat-csv.toml).
FEATURES = {"log_variables": "auto", "delta_scale": "horizon", "static_summary": True}


def read_stays(which: str, n: int, folder: Path) -> physionet2012.PhysioNet2012Set:
    """The first ``n`` stays of set ``which`` ("a" or "b"), read by the dedicated reader
    (their files are unpacked into ``folder``, so only they are read)."""
    root = dataset_dir("physionet2012")
    folder.mkdir(parents=True, exist_ok=True)
    folder = unpack_physionet2012(folder, n, which)
    return physionet2012.read(folder, outcomes=root / f"Outcomes-{which}.txt")


def export(data: physionet2012.PhysioNet2012Set, out: Path, extra: str = "") -> Path:
    """Write ``data`` as flat CSVs into ``out``; the mapping file's path (``extra`` is
    appended to it, e.g. a ``[groups]`` table)."""
    out.mkdir(parents=True, exist_ok=True)
    data.events.rename(
        columns={"subject_id": "RecordID", "time": "Hours", "code": "Parameter", "value": "Value"}
    ).to_csv(out / "events.csv", index=False)
    data.static.rename_axis("RecordID").to_csv(out / "static.csv")
    data.outcomes[["in_hospital_death"]].rename(
        columns={"in_hospital_death": "In-hospital_death"}
    ).rename_axis("RecordID").astype("int64").to_csv(out / "outcomes.csv")
    columns = "[" + ", ".join(f'"{c}"' for c in data.static.columns) + "]"
    mapping = out / "mapping.toml"
    mapping.write_text(MAPPING.format(root=out, columns=columns) + extra)
    return mapping
