"""MEDS write and read: the MIMIC demo survives the round trip exactly; bad folders fail clearly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medseq.paths import dataset_dir
from medseq.schema import DataError
from medseq.sources import meds, mimic3


@pytest.fixture(scope="module")
def demo():
    return mimic3.read(dataset_dir("mimic3demo"))


def test_round_trip_is_exact_and_follows_the_meds_schema(demo, tmp_path):
    splits = {int(s): ("train" if i % 5 else "held_out") for i, s in enumerate(demo.subject_ids)}
    root = meds.write(demo, tmp_path / "meds", splits=splits, dataset_name="mimic3demo")
    back = meds.read(root)
    pd.testing.assert_frame_equal(back.events, demo.events, check_exact=True)
    pd.testing.assert_frame_equal(back.visits, demo.visits, check_exact=True)
    assert back.origin.reindex(demo.origin.index).equals(demo.origin)
    schema = pq.read_schema(root / "data" / "0.parquet")
    assert schema.field("subject_id").type == pa.int64()
    assert schema.field("time").type == pa.timestamp("us")
    assert schema.field("code").type == pa.string()
    assert schema.field("numeric_value").type == pa.float32()
    meta = json.loads((root / "metadata" / "dataset.json").read_text())
    assert meta["dataset_name"] == "mimic3demo" and meta["etl_name"] == "medseq"
    codes = pq.read_table(root / "metadata" / "codes.parquet").to_pandas().set_index("code")
    assert set(codes.index) == set(demo.events["code"])
    assert list(codes.loc["ICD9DX/4019", "parent_codes"]) == ["ICD9DX/401"]
    assert meds.read_splits(root).to_dict() == splits
    # Absolute times are the source's: subject 10006 was admitted 2164-10-23 21:09.
    raw = pq.read_table(root / "data" / "0.parquet").to_pandas()
    first = raw[(raw["subject_id"] == 10006) & (raw["code"] == "ADMISSION/EMERGENCY")]
    assert first["time"].iloc[0] == pd.Timestamp("2164-10-23 21:09:00")


def test_shards_keep_each_subject_whole(demo, tmp_path):
    root = meds.write(demo, tmp_path / "meds", subjects_per_shard=30)
    shards = sorted((root / "data").glob("*.parquet"))
    assert len(shards) == 4
    seen = [set(pq.read_table(p, columns=["subject_id"]).column(0).to_pylist()) for p in shards]
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == 100
    pd.testing.assert_frame_equal(meds.read(root).events, demo.events)


def _write(root, frame):
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / "data" / "0.parquet")


def _frame(**changes):
    base = {
        "subject_id": [1, 1, 1, 1],
        "time": pd.to_datetime(
            [None, "2020-01-01 10:00", "2020-01-01 12:00", "2020-01-03 09:30"]
        ).astype("datetime64[us]"),
        "code": ["GENDER/F", "ADMISSION/URGENT", "LAB/K", "DISCHARGE/HOME"],
        "numeric_value": np.array([np.nan, np.nan, 4.5, np.nan], dtype=np.float32),
    }
    return pd.DataFrame(base | changes)


def test_static_events_and_values_are_read(tmp_path):
    _write(tmp_path, _frame())
    data = meds.read(tmp_path)
    assert data.report.counts == {"static_event_placed_first": 1}
    assert data.events["time"].tolist() == [0.0, 0.0, 2.0, 47.5]
    assert data.events["value"].iloc[2] == pytest.approx(4.5)
    assert data.visits[["start", "end"]].values.tolist() == [[0.0, 47.5]]


def test_bad_folders_name_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match=r"no MEDS data files \(expected data/\*\*/\*\.parquet\)"):
        meds.read(tmp_path)
    _write(tmp_path, _frame().drop(columns=["numeric_value"]))
    with pytest.raises(DataError, match=r"0\.parquet: missing MEDS columns \['numeric_value'\]"):
        meds.read(tmp_path)
    _write(tmp_path, _frame(code=["GENDER/F", "ADMISSION/URGENT", None, "DISCHARGE/HOME"]))
    with pytest.raises(DataError, match="row 2: code is null"):
        meds.read(tmp_path)
    _write(tmp_path, _frame(code=["GENDER/F", "ADMISSION/URGENT", "LAB/K", "LAB/K"]))
    with pytest.raises(DataError, match=r"subject 1: 1 'ADMISSION/' codes but 0 'DISCHARGE/'"):
        meds.read(tmp_path)
    _write(tmp_path, _frame())
    pq.write_table(
        pa.Table.from_pandas(_frame(), preserve_index=False), tmp_path / "data" / "1.parquet"
    )
    with pytest.raises(DataError, match="subject 1 is split over"):
        meds.read(tmp_path)
