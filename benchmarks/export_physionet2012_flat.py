"""PhysioNet 2012 sets A and B exported as the flat CSVs a hospital would bring, plus the
mapping files that read them (dataset ``flat_icu``), into a runs folder (never committed).

Why: the flat-CSV path must reproduce the dedicated pipeline (issue 18): the same stays,
the same events and descriptors and labels, read back through a TOML column mapping
instead of PhysioNet's own reader. Events are written as ``RecordID,Hours,Parameter,Value``
(hours since ICU admission), descriptors as one row per stay (empty = not recorded),
outcomes as upstream's columns.

Usage::

    python benchmarks/export_physionet2012_flat.py runs/physionet2012_flat
    medseq train configs/physionet2012-flat-csv.toml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medseq.paths import dataset_dir
from medseq.sources import physionet2012

MAPPING = """# PhysioNet 2012 set {set} as flat CSVs (benchmarks/export_physionet2012_flat.py)
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


def export(out: Path, which: str) -> Path:
    root = dataset_dir("physionet2012")
    data = physionet2012.read(root / f"set-{which}.tar.gz")
    folder = out / f"set-{which}"
    folder.mkdir(parents=True, exist_ok=True)
    events = data.events.rename(
        columns={"subject_id": "RecordID", "time": "Hours", "code": "Parameter", "value": "Value"}
    )
    events.to_csv(folder / "events.csv", index=False)
    data.static.rename_axis("RecordID").to_csv(folder / "static.csv")
    outcomes = data.outcomes[["in_hospital_death"]].rename(
        columns={"in_hospital_death": "In-hospital_death"}
    )
    outcomes.rename_axis("RecordID").astype("int64").to_csv(folder / "outcomes.csv")
    columns = "[" + ", ".join(f'"{c}"' for c in data.static.columns) + "]"
    mapping = folder / "mapping.toml"
    mapping.write_text(MAPPING.format(set=which.upper(), root=folder.resolve(), columns=columns))
    print(f"{mapping}: {len(events):,} events, {len(data.static):,} stays")
    return mapping


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    for which in ("a", "b"):
        export(args.out, which)


if __name__ == "__main__":
    main()
