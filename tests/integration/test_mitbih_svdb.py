"""MIT-BIH + SVDB beats on the real files: the SVDB reader, AAMI mapping, the 128 Hz / lead
convention, record-disjoint folds, and agreement of beat features across sampling rates.

Expected counts come from the staged ``svdb/SOURCE.md`` per-record table (computed there
from the ``.atr`` files) and ``mitdb_full/SOURCE.md``.
"""

import lzma
import shutil

import numpy as np
import pandas as pd
import pytest

from medseq.datasets import mitbih_svdb
from medseq.datasets.mitbih import BEAT_CLASSES, ID_STRIDE
from medseq.datasets.registry import get_dataset
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.paths import dataset_dir
from medseq.schema import DataError
from medseq.sources import wfdb_records
from medseq.tasks.ecg import MITBIH_DS1, MITBIH_DS2

SVDB_FEW = ("800", "821", "865", "868", "893", "802")
MITDB_FEW = ("101", "119", "209", "100", "233")
#: The config's per-beat values (mitbih-beats.toml / mitbih-svdb-beats.toml features).
CONFIG_FEATURES = {"lead": "ECG1", "morphology": "none", "local_ratios": False}


@pytest.fixture(scope="module")
def few():
    return mitbih_svdb.read_both(
        dataset_dir("svdb"), dataset_dir("mitdb_full"), svdb=SVDB_FEW, mitdb=MITDB_FEW
    )


def _counts(data, record: str) -> list[int]:
    table = data.beats[data.beats["record"] == record]["label"]
    return [int((table == k).sum()) for k in range(len(BEAT_CLASSES))]


def test_svdb_record_reads_at_128_hz_with_its_reference_beats():
    signal = mitbih_svdb.read_svdb_record(dataset_dir("svdb"), "800")
    assert signal.fs_hz == 128.0
    assert signal.samples.shape == (230_400, 2)
    beats = [s for s in signal.annotation_symbols if s in ("N", "S", "V", "F")]
    assert len(beats) == 1883  # N 1846, S 30, V 6, F 1 (SOURCE.md)


def test_svdb_labels_map_to_aami_with_q_and_b_left_out(few):
    # SOURCE.md: 868 = N 2554, S 227, V 555, Q 11, B 1; 821 = N 2482, S 613 + a 1, V 36, Q 1
    assert _counts(few, "868") == [2554, 227, 555, 0]
    assert _counts(few, "821") == [2482, 614, 36, 0]
    assert _counts(few, "865") == [1102, 1818, 235, 0]
    assert _counts(few, "893") == [2189, 0, 339, 0]
    summary = few.report.summary()
    assert "SVDB 'B' beats excluded (no EC57 class): 1" in summary
    # Q: 868 11, 821 1, 865 7, 800/893/802 0; MIT-BIH 101 2, 119/209/100/233 0
    assert "Q beats excluded (AAMI unclassifiable): 21" in summary
    # MIT-BIH A beats are S, as SVDB's S beats are: 209 holds 383 A
    assert _counts(few, "209") == [2621, 383, 1, 0]


def test_both_databases_share_rate_and_lead_names(few):
    for record, signal in few.signals.items():
        assert signal.fs_hz == 128.0, record
        assert signal.channel_names == mitbih_svdb.LEADS
    # MIT-BIH is 650,000 samples at 360 Hz -> 650,000 * 128 / 360
    assert few.signals["100"].samples.shape[0] == int(np.ceil(650_000 * 128 / 360))


def test_mlii_is_the_primary_lead_even_where_the_record_swaps_them():
    raw = wfdb_records.read_record(dataset_dir("mitdb_full"), "114")
    assert raw.channel_names == ("V5", "MLII")
    harmonised = mitbih_svdb.harmonise(raw, "mitbih", fs_hz=raw.fs_hz)
    np.testing.assert_array_equal(harmonised.samples[:, 0], raw.samples[:, 1])
    np.testing.assert_array_equal(harmonised.samples[:, 1], raw.samples[:, 0])


def test_inter_patient_folds_keep_every_record_whole_and_ds2_apart(few):
    labels = few.beats["label"]
    split = mitbih_svdb.inter_patient(None, few, labels)
    test_records = set(split.test // ID_STRIDE)
    assert test_records == {100, 233}
    assert test_records <= {int(r) for r in MITBIH_DS2}
    seen = []
    for train, val in split.folds:
        train_records, val_records = set(train // ID_STRIDE), set(val // ID_STRIDE)
        assert not train_records & val_records
        assert not (train_records | val_records) & test_records
        seen += sorted(val_records)
        # a record in a fold brings all of its beats
        for record in val_records:
            assert (labels.index // ID_STRIDE == record).sum() == np.isin(
                val // ID_STRIDE, [record]
            ).sum()
    training = {101, 119, 209} | {int(r) for r in SVDB_FEW}
    assert sorted(seen) == sorted(training)  # each training record scored exactly once
    assert {int(r) for r in MITBIH_DS1} & training == {101, 119, 209}


def test_record_folds_spread_the_s_rich_records():
    sizes = {865: 30, 209: 20, 800: 5, 101: 1}
    ids = np.array([r * ID_STRIDE + i for r, n in sizes.items() for i in range(n)])
    y = np.array([1] * 30 + [1] * 20 + [0] * 5 + [2])
    folds = mitbih_svdb.record_folds(pd.Series(y, index=ids), [865, 209, 800, 101], 2)
    assert sorted(r for f in folds for r in f) == [101, 209, 800, 865]
    assert not any({865, 209} <= set(f) for f in folds)  # the two S-rich records apart


def test_features_agree_after_downsampling():
    """The config's 11 beat values of MIT-BIH record 119 at 360 Hz and at 128 Hz.

    Tolerances, and why: each R peak moves by at most half a 128 Hz sample when rounded,
    so an RR interval moves by at most one sample, 1/128 s (the bound is exact, plus float
    rounding); the RR ratios move by that over the record's mean RR. Template matching is
    computed on windows stored at 50 Hz in both cases, so only that sub-sample shift of the
    R peak and the resampler's filter differ: its values must stay correlated above 0.99
    across the record's beats, with 99 % of beats within 0.1 (correlations) or 0.25
    (deviation RMS ratio, whose spread over this record is 0.9).
    """
    raw = wfdb_records.read_record(dataset_dir("mitdb_full"), "119")
    at_360 = mitbih_svdb.harmonise(raw, "mitbih", fs_hz=raw.fs_hz)
    at_128 = mitbih_svdb.harmonise(raw, "mitbih")
    a, peaks_a = BeatFeaturizer(**CONFIG_FEATURES).raw_features(at_360)
    b, _ = BeatFeaturizer(**CONFIG_FEATURES).raw_features(at_128)
    assert a.shape == b.shape and len(peaks_a) == 1987
    names = BeatFeaturizer(**CONFIG_FEATURES).scalar_names
    col = {name: j for j, name in enumerate(names)}
    mean_rr = float(a[0, col["mean_rr_s"]])
    one_sample = 1.0 / 128.0 + 1e-5
    assert np.abs(a[:, col["pre_rr_s"]] - b[:, col["pre_rr_s"]]).max() <= one_sample
    for ratio in ("pre_rr_over_mean", "post_rr_over_mean"):
        assert np.abs(a[:, col[ratio]] - b[:, col[ratio]]).max() <= 1.05 * one_sample / mean_rr
    for name, p99 in (
        ("qrs_correlation_with_median", 0.1),
        ("window_correlation_with_median", 0.1),
        ("deviation_rms_over_median_rms", 0.25),
    ):
        x, y = a[:, col[name]], b[:, col[name]]
        assert np.corrcoef(x, y)[0, 1] > 0.99, name
        assert np.quantile(np.abs(x - y), 0.99) <= p99, name


def _copy_record(tmp_path, record: str) -> None:
    source = dataset_dir("svdb")
    for suffix in (".hea", ".atr"):
        shutil.copyfile(source / f"{record}{suffix}", tmp_path / f"{record}{suffix}")
    with lzma.open(source / f"{record}.dat.xz") as packed:
        (tmp_path / f"{record}.dat").write_bytes(packed.read())


def test_truncated_signal_file_is_refused_by_name(tmp_path):
    _copy_record(tmp_path, "800")
    data = (tmp_path / "800.dat").read_bytes()
    (tmp_path / "800.dat").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"800\.dat: truncated signal file"):
        mitbih_svdb.read_svdb_record(tmp_path, "800")


def test_truncated_annotation_file_is_refused_not_half_read(tmp_path):
    _copy_record(tmp_path, "800")
    data = (tmp_path / "800.atr").read_bytes()
    (tmp_path / "800.atr").write_bytes(data[: len(data) // 2 + 1])
    with pytest.raises(DataError, match=r"800\.atr: truncated annotation file"):
        mitbih_svdb.read_svdb_record(tmp_path, "800")


def test_wrong_rate_and_malformed_header_are_refused(tmp_path):
    _copy_record(tmp_path, "800")
    header = (tmp_path / "800.hea").read_text()
    (tmp_path / "800.hea").write_text(header.replace("800 2 128 230400", "800 2 360 230400"))
    with pytest.raises(DataError, match="SVDB records are 2 channels at 128 Hz"):
        mitbih_svdb.read_svdb_record(tmp_path, "800")
    (tmp_path / "800.hea").write_text("800 2 128 230400\r\n800.dat 212 200 10 0 -101\r\n")
    with pytest.raises(DataError, match="800: unreadable record"):
        mitbih_svdb.read_svdb_record(tmp_path, "800")


def test_folder_without_mitbih_beside_it_is_refused(tmp_path):
    (tmp_path / "svdb").mkdir()
    _copy_record(tmp_path / "svdb", "800")
    with pytest.raises(DataError, match="MIT-BIH Arrhythmia folder is missing"):
        mitbih_svdb.read(tmp_path / "svdb")


def test_spec_is_registered_with_serving_streaming_and_sites():
    spec = get_dataset("mitbih_svdb")
    assert spec.protocol("inter_patient") is mitbih_svdb.inter_patient
    assert spec.require("request", "POST /v1/predict") is spec.request
    assert sorted(spec.require("partitions", "medseq federate")) == ["databases", "records"]
    streaming = spec.require("signal_streaming", "/v1/streams")
    assert streaming.model_fs_hz == 128.0 and 360.0 in streaming.fs_hz


def _small_root(root, svdb: tuple[str, ...], mitdb: tuple[str, ...]):
    """A data root with a few SVDB and MIT-BIH records (links to the real files)."""
    for name, records in (("svdb", svdb), ("mitdb_full", mitdb)):
        folder = root / name
        folder.mkdir()
        for record in records:
            for suffix in (".hea", ".atr", ".dat.xz"):
                (folder / f"{record}{suffix}").symlink_to(dataset_dir(name) / f"{record}{suffix}")
        (folder / "RECORDS").write_text("\n".join(records) + "\n")
    return root / "svdb"


def test_medseq_train_evaluate_report_explain_on_the_config(tmp_path):
    """The shipped config end to end on 5 SVDB + 2 MIT-BIH records (one epoch): train
    scores DS2's record 100 once, the bundle re-scores it, reports and explains a beat."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from medseq.cli import app

    svdb = _small_root(tmp_path, ("800", "802", "803", "821", "893"), ("101", "100"))
    config = Path(__file__).parents[2] / "configs" / "mitbih-svdb-beats.toml"
    out = tmp_path / "run"
    runner = CliRunner()
    sets = ["train.epochs=1", "train.patience=1", "evaluate.n_boot=20", f"data.train={svdb}"]
    args = ["train", str(config), "-o", str(out)] + [x for s in sets for x in ("--set", s)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads((out / "results.json").read_text())
    assert set(written["test_metrics"]) >= {"se_S", "ppv_V"}
    oof = pd.read_csv(out / "val_predictions.csv")
    assert set(oof["subject_id"] // ID_STRIDE) == {101, 800, 802, 803, 821, 893}
    test = pd.read_csv(out / "test_predictions.csv")
    assert set(test["subject_id"] // ID_STRIDE) == {100}
    bundle = out / "bundle"
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(svdb), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    assert "se_V" in result.output
    report = tmp_path / "report.html"
    result = runner.invoke(
        app, ["report", str(bundle), "--data", str(svdb), "--n-boot", "20", "-o", str(report)]
    )
    assert result.exit_code == 0, result.output
    assert report.stat().st_size > 10_000
    beat = int(test["subject_id"].iloc[500])
    result = runner.invoke(
        app, ["explain", str(bundle), "--data", str(svdb), "--subject", str(beat),
              "-o", str(tmp_path / "explain")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    explained = json.loads((tmp_path / "explain" / f"sample-{beat}.json").read_text())
    assert len(explained["step_times_s"]) == 9  # the beat and its 8 predecessors
