"""The shard-by-shard MEDS task scan gives the same samples, labels and input counts as the
in-memory path (meds.read_events + build_task + input counts), on real Synthea records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_slices import unpack_synthea
from medseq.schema import DataError
from medseq.sources import fhir_r4, meds
from medseq.sources.meds_scan import scan_task, shards
from medseq.tasks import inputs as task_inputs
from medseq.tasks.cohort import build_task
from medseq.tasks.spec import TaskSpec

N_BUNDLES = 40


@pytest.fixture(scope="module")
def meds_folder(tmp_path_factory) -> Path:
    """40 Synthea Bundles written as a MEDS folder of several shards."""
    bundles = unpack_synthea(tmp_path_factory.mktemp("synthea_scan"), N_BUNDLES)
    out = tmp_path_factory.mktemp("meds_scan") / "meds"
    fhir_r4.read(bundles).to_meds(out, subjects_per_shard=7)
    return out


def test_scan_equals_the_in_memory_task(meds_folder):
    assert len(shards(meds_folder)) >= 5
    scan = scan_task(
        meds_folder,
        anchor=["ENCOUNTER/AMB"],
        offset_hours=24,
        label_codes=["ENCOUNTER/EMER", "ENCOUNTER/IMP"],
        within_hours=8766,
        window_hours=3 * 8766,
    )
    events, origin, _ = meds.read_events(meds_folder)
    spec = TaskSpec.from_dict(
        {
            "prediction_time": {"anchor": ["ENCOUNTER/AMB"], "offset_hours": 24},
            "label": {
                "codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"],
                "within_hours": 8766,
                "censored": "negative",
            },
            "observation": {"window_hours": 3 * 8766},
        }
    )
    built = build_task(events, origin, spec)
    # build_task also drops subjects not alive at t; every one it keeps the scan has too
    assert scan.n_events == len(events)
    position = {s: i for i, s in enumerate(scan.subject_id.tolist())}
    kept = built.samples.index.to_numpy()
    assert len(kept) > 10 and set(kept) <= set(position)
    rows = np.array([position[s] for s in kept])
    np.testing.assert_array_equal(scan.label[rows], built.labels.loc[kept].to_numpy())
    assert 0 < built.labels.sum() < len(kept)
    inputs = task_inputs.input_events(events, built.samples)
    # the in-memory inputs add age-band and sex tokens; the scan counts recorded events only
    recorded = ~inputs["code"].str.startswith(("AGE_YEARS/", "GENDER/"))
    columns = sorted(inputs.loc[recorded, "code"].unique().tolist())
    assert len(columns) > 20
    expected = task_inputs.code_counts(inputs, kept, columns)
    index = {c: i for i, c in enumerate(scan.codes)}
    got = scan.counts[rows][:, [index[c] for c in columns]].toarray()
    np.testing.assert_array_equal(got, expected)


def test_no_shards_is_named(tmp_path):
    with pytest.raises(DataError, match="no parquet shards"):
        scan_task(tmp_path, anchor=["A"], offset_hours=0, label_codes=["B"], within_hours=1)
