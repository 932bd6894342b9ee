"""``medseq explain`` for beat-feature, SMILES-token and per-hour models, on real data.

Each bundle is trained small here through its dataset's spec (a few real records, molecules
or patients, one or two epochs). For each: the attributions add up to the change of the
explained log-odds, computed independently from ``bundle.predict_arrays`` (completeness of
integrated gradients); resetting the top beat feature moves the call more than the other
columns do; the per-hour model gives exactly zero to the hours after the explained one (and
a bidirectional control does not); and the CLI writes the explanation of each.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from data_slices import unpack_physionet2019
from medseq.bundle import Bundle, load_bundle, save_bundle
from medseq.cli import app
from medseq.datasets import get_dataset
from medseq.models import build_model, model_config_from_dict
from medseq.paths import dataset_dir


def _tiny_bundle(out: Path, name: str, task: str, data, ids, features, model, epochs=1):
    """A bundle of ``name`` trained on ``ids`` for ``epochs`` through the spec's hooks."""
    from medseq.training import TrainConfig, Trainer

    torch.manual_seed(0)
    spec = get_dataset(name)
    featurizer = spec.fit_featurizer(features, data, ids)
    arrays = spec.transform(featurizer, data, ids)
    arrays["y"] = spec.labels(task, data).loc[ids].to_numpy(np.float32)
    kind = spec.task_type(task)
    names = spec.class_names(task, data) if spec.class_names else []
    sizes = {"n_outputs": len(names) if kind != "binary" else 1, **spec.model_sizes(featurizer)}
    config = model_config_from_dict({**model, **sizes})
    torch_model = build_model(config)
    train = TrainConfig(task=kind, epochs=epochs, batch_size=32, patience=None, progress=False)
    Trainer(train).fit(torch_model, arrays, arrays)
    bundle = Bundle(
        config, featurizer, [torch_model], task=kind,
        provenance={"dataset": name, "task": task}, class_names=names or None,
    )  # fmt: skip
    return save_bundle(bundle, out)


def _log_odds(p: float) -> float:
    return float(np.log(p) - np.log1p(-p))


def _explain(args: list[str]) -> str:
    result = CliRunner().invoke(app, ["explain", *args])
    assert result.exit_code == 0, result.output
    return result.output


# -- MIT-BIH: one beat with its 8 preceding beats, rhythm features only (the published config)


@pytest.fixture(scope="module")
def mit_folder(tmp_path_factory):
    """Record 100 alone, as a WFDB folder whose RECORDS lists it."""
    folder = tmp_path_factory.mktemp("mitdb")
    for path in dataset_dir("mitdb_full").glob("100.*"):
        (folder / path.name).symlink_to(path)
    (folder / "RECORDS").write_text("100\n")
    return folder


@pytest.fixture(scope="module")
def mit(mit_folder):
    return get_dataset("mitbih").read(mit_folder)


@pytest.fixture(scope="module")
def mit_bundle(mit, tmp_path_factory):
    ids = mit.beats.index.to_numpy()[:600]
    features = {"morphology": "none", "local_ratios": False, "context_beats": 8}
    model = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "hidden_size": 8,
             "pooling": "last"}  # fmt: skip
    out = tmp_path_factory.mktemp("mit") / "bundle"
    return _tiny_bundle(out, "mitbih", "beat", mit, ids, features, model, epochs=2)


@pytest.fixture(scope="module")
def premature_beat(mit):
    """A supraventricular beat of record 100 (its explanation leans on the RR intervals)."""
    return int(mit.beats.index[mit.beats["label"] == 1][0])


def _attribute(bundle_dir, data, sample_id):
    from medseq.explain.feature_sequences import attribute_sequence

    bundle = load_bundle(bundle_dir)
    features = bundle.spec().transform(bundle.featurizer, data, np.array([sample_id]))
    return bundle, features, attribute_sequence(bundle, features, n_steps=128)


def test_beat_attributions_add_up_to_the_change_of_the_log_odds(mit, mit_bundle, premature_beat):
    bundle, features, (integrated, k, _, _) = _attribute(mit_bundle, mit, premature_beat)
    blank = {**features, "values": np.zeros_like(features["values"])}
    f_x = _log_odds(bundle.predict_arrays(features)[0, k])
    f_0 = _log_odds(bundle.predict_arrays(blank)[0, k])
    assert integrated.output == pytest.approx(f_x, abs=1e-4)
    assert integrated.baseline_output == pytest.approx(f_0, abs=1e-4)
    cells = integrated.attributions[0]
    assert cells.shape == (int(features["lengths"][0]), bundle.featurizer.n_features)
    assert cells.sum() == pytest.approx(f_x - f_0, abs=0.01 * abs(f_x - f_0) + 1e-4)
    assert abs(f_x - f_0) > 1e-3  # a non-trivial change to explain


def test_resetting_the_top_beat_feature_moves_the_call_more_than_the_others(
    mit, mit_bundle, premature_beat
):
    bundle, features, (integrated, k, _, _) = _attribute(mit_bundle, mit, premature_beat)
    per_feature = np.abs(integrated.attributions[0].sum(axis=0))
    f_x = _log_odds(bundle.predict_arrays(features)[0, k])
    change = []
    for column in range(features["values"].shape[2]):  # occlusion, through the bundle itself
        values = features["values"].copy()
        values[..., column] = 0.0
        change.append(
            abs(_log_odds(bundle.predict_arrays({**features, "values": values})[0, k]) - f_x)
        )
    top = int(np.argmax(per_feature))
    assert change[top] > np.median(np.delete(change, top))
    assert change[top] >= np.sort(change)[-3]  # among the three columns that matter most


def test_beat_times_are_the_r_peaks_of_the_beat_and_its_predecessors(mit, mit_bundle):
    from medseq.features.signals.beats import beat_annotations

    bundle = load_bundle(mit_bundle)
    positions, _ = beat_annotations(mit.signals["100"])
    ids = mit.beats.index.to_numpy()[[2, 500]]
    times = get_dataset("mitbih").step_times(bundle.featurizer, mit, ids)
    assert [len(t) for t in times] == [3, 9]  # the first beats have fewer predecessors
    row = int(mit.beats.loc[ids[1], "index"])
    fs = mit.signals["100"].fs_hz
    np.testing.assert_allclose(times[1], positions[row - 8 : row + 1] / fs)


def test_medseq_explain_on_a_beat_model(mit_folder, mit_bundle, premature_beat, tmp_path):
    out = _explain([str(mit_bundle), "--data", str(mit_folder), "--subject",
                    str(premature_beat), "-o", str(tmp_path)])  # fmt: skip
    assert "beats contributing most" in out and " s " in out  # beats against time
    written = json.loads((tmp_path / f"sample-{premature_beat}.json").read_text())
    names = load_bundle(mit_bundle).featurizer.describe().names("F")
    assert list(written["per_feature"]) == names and written["label"] == "S"
    n_steps = min(9, premature_beat % 100_000 + 1)  # the beat and up to 8 before it
    assert len(written["step_times_s"]) == len(written["per_step"]) == n_steps
    assert written["occlusion_check"]["feature"] in names
    png = (tmp_path / f"sample-{premature_beat}-steps-features.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 20_000


# -- CinC 2017: whole recordings, beats with XQRS peaks + rhythm summaries (static input) -----


@pytest.fixture(scope="module")
def cinc_part(tmp_path_factory):
    """The first 14 recordings of the first archive part, as a small part of their own."""
    folder = tmp_path_factory.mktemp("cinc")
    source = dataset_dir("physionet2017")
    (folder / "REFERENCE-v3.csv").symlink_to(source / "REFERENCE-v3.csv")
    part = folder / "training2017-A00.tar.xz"
    with tarfile.open(source / "training2017-A00.tar.xz") as tar, tarfile.open(part, "w:xz") as out:
        members = [m for m in tar if m.isfile() and m.name.endswith((".mat", ".hea"))]
        for member in sorted(members, key=lambda m: m.name)[:28]:
            out.addfile(member, tar.extractfile(member))
    return part


@pytest.fixture(scope="module")
def cinc_bundle(cinc_part, tmp_path_factory):
    data = get_dataset("cinc2017").read(cinc_part)
    ids = data.labels.index.to_numpy()[:12]
    model = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "hidden_size": 8,
             "bidirectional": True, "attention_size": 8, "static_hidden_size": 8}  # fmt: skip
    features = {"kind": "beats", "rhythm_summary": True, "qrs_shape": True}
    out = tmp_path_factory.mktemp("cincb") / "bundle"
    return data, _tiny_bundle(out, "cinc2017", "rhythm", data, ids, features, model, epochs=2)


def test_recording_attributions_include_the_summaries_and_add_up(cinc_bundle):
    data, bundle_dir = cinc_bundle
    sample = int(data.labels.index[12])  # a recording not trained on
    bundle, features, (integrated, k, _, _) = _attribute(bundle_dir, data, sample)
    cells, static = integrated.attributions
    assert static.shape == (bundle.featurizer.n_summaries,) and np.abs(static).sum() > 0
    blank = {**features, "values": np.zeros_like(features["values"]),
             "static": np.zeros_like(features["static"])}  # fmt: skip
    f_x = _log_odds(bundle.predict_arrays(features)[0, k])
    f_0 = _log_odds(bundle.predict_arrays(blank)[0, k])
    total = cells.sum() + static.sum()
    assert total == pytest.approx(f_x - f_0, abs=0.01 * abs(f_x - f_0) + 1e-4)


def test_medseq_explain_on_a_recording_beat_model(cinc_part, cinc_bundle, tmp_path):
    data, bundle_dir = cinc_bundle
    sample = int(data.labels.index[13])
    out = _explain([str(bundle_dir), "--data", str(cinc_part), "--subject", str(sample),
                    "--target", "A", "-o", str(tmp_path)])  # fmt: skip
    assert "p(A)" in out and "record-level inputs" in out
    written = json.loads((tmp_path / f"sample-{sample}.json").read_text())
    times = np.asarray(written["step_times_s"])
    assert len(times) == len(written["per_step"]) > 5 and (np.diff(times) > 0.2).all()
    assert times[-1] <= len(data.signals[sample].samples) / data.signals[sample].fs_hz
    assert set(written["static"]) == set(load_bundle(bundle_dir).featurizer.summary_names)


# -- Tox21: SMILES tokens, canonical SMILES + 2 randomised variants averaged -------------------


@pytest.fixture(scope="module")
def tox(tmp_path_factory):
    pytest.importorskip("rdkit")
    data = get_dataset("tox21").read(dataset_dir("tox21"))
    ids = data.canonical.index.to_numpy()[:300]
    model = {"kind": "smiles_rnn", "embedding_size": 8, "hidden_size": 8, "attention_size": 8}
    out = tmp_path_factory.mktemp("tox") / "bundle"
    features = {"n_enumerations": 2}
    return data, _tiny_bundle(out, "tox21", "toxicity", data, ids, features, model, epochs=2)


def test_token_attributions_add_up_and_equal_layer_integrated_gradients(tox):
    from captum.attr import LayerIntegratedGradients

    from medseq.explain.tokens import token_attributions

    data, bundle_dir = tox
    bundle = load_bundle(bundle_dir)
    sample = int(data.canonical.index[320])  # not trained on
    tokens = bundle.spec().transform(bundle.featurizer, data, np.array([sample]))["tokens"]
    canonical = tokens[0, 0]
    n = int((canonical != 0).sum())
    one = {"tokens": canonical[None, :n], "lengths": np.array([n])}
    member = bundle.members[0].eval()
    layer = LayerIntegratedGradients(
        lambda ids: member(ids, torch.tensor([n]).expand(len(ids))), member.embedding
    )
    for k in (0, 7):
        integrated = token_attributions(bundle, canonical, n, k, n_steps=128)
        f_x = _log_odds(bundle.predict_arrays(one)[0, k])
        assert integrated.output == pytest.approx(f_x, abs=1e-4)
        gap = integrated.output - integrated.baseline_output
        assert integrated.attributions[0].sum() == pytest.approx(gap, abs=0.01 * abs(gap) + 1e-4)
        # One member, one label: Captum's own layer method on the embedding, summed over E.
        ids = torch.as_tensor(one["tokens"]).long()
        reference = layer.attribute(  # batches of <= 16: the model keeps their row order
            ids, torch.zeros_like(ids), target=k, n_steps=128, internal_batch_size=16
        )
        np.testing.assert_allclose(
            integrated.attributions[0], reference.sum(-1)[0].detach().numpy(), atol=1e-4
        )


def test_medseq_explain_on_a_smiles_model(tox, tmp_path):
    data, bundle_dir = tox
    sample = int(data.canonical.index[321])
    args = [str(bundle_dir), "--data", str(dataset_dir("tox21")), "--subject", str(sample)]
    out = _explain([*args, "--target", "SR-p53", "-o", str(tmp_path)])
    written = json.loads((tmp_path / f"sample-{sample}.json").read_text())
    assert [lab["label"] for lab in written["labels"]] == ["SR-p53"]
    assert "".join(written["tokens"]) == written["smiles"] == data.canonical.loc[sample]
    assert len(written["labels"][0]["token_scores"]) == len(written["tokens"])
    assert written["smiles"] in out and "SR-p53: p = " in out
    assert (tmp_path / f"sample-{sample}-tokens.png").read_bytes()[:4] == b"\x89PNG"


# -- PhysioNet 2019: a risk per ICU hour from the hours up to it ------------------------------


@pytest.fixture(scope="module")
def sepsis_root(tmp_path_factory):
    """The first 30 patients of each hospital system and 10 septic ones of each."""
    return unpack_physionet2019(tmp_path_factory.mktemp("sepsis"), 30, max_septic=10)


@pytest.fixture(scope="module")
def sepsis(sepsis_root, tmp_path_factory):
    data = get_dataset("physionet2019").read(sepsis_root)
    ids = data.static.index.to_numpy()
    out = tmp_path_factory.mktemp("sepsisb")
    bundles = {}
    for direction in ("causal", "bidirectional"):
        model = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "mode": "sequence",
                 "hidden_size": 16, "bidirectional": direction == "bidirectional"}  # fmt: skip
        bundles[direction] = _tiny_bundle(
            out / direction, "physionet2019", "sepsis_6h", data, ids, {}, model, epochs=2
        )
    return data, bundles


def _septic_stay(data) -> int:
    labels = get_dataset("physionet2019").labels("sepsis_6h", data)
    return int(labels.index[np.nanmax(labels.to_numpy(), axis=1) == 1][0])


def _target(bundle_dir, data, sample, step):
    from medseq.explain.target_step import target_step_attributions

    bundle = load_bundle(bundle_dir)
    features = bundle.spec().transform(bundle.featurizer, data, np.array([sample]))
    n = int(features["lengths"][0])
    prob = bundle.predict_arrays(features)[0, :n]
    values = features["values"][0, :n]
    target = target_step_attributions(
        bundle.members, values, prob, step, sample_id=sample, class_names=["no", "yes"],
        n_steps=128,
    )  # fmt: skip
    return target, prob


def test_a_causal_hour_gets_nothing_from_later_hours_and_adds_up(sepsis):
    data, bundles = sepsis
    sample = _septic_stay(data)
    target, prob = _target(bundles["causal"], data, sample, 10)
    assert len(target.cells) > 20
    assert (target.cells[11:] == 0.0).all() and target.after_share == 0.0
    assert np.abs(target.cells[:11]).sum() > 0 and np.abs(target.cells[10]).sum() > 0
    f_x = _log_odds(prob[10, 1])
    assert target.integrated.output == pytest.approx(f_x, abs=1e-4)
    gap = target.integrated.output - target.integrated.baseline_output
    assert target.cells.sum() == pytest.approx(gap, abs=0.01 * abs(gap) + 1e-4)
    # the check can fail: a bidirectional model reads the later hours
    control, _ = _target(bundles["bidirectional"], data, sample, 10)
    assert control.after_share > 0.01


def test_medseq_explain_on_a_per_hour_model(sepsis, sepsis_root, tmp_path):
    data, bundles = sepsis
    sample = _septic_stay(data)
    args = [str(bundles["causal"]), "--data", str(sepsis_root), "--subject", str(sample)]
    out = _explain([*args, "--step", "12", "-o", str(tmp_path)])
    assert "step 12 (1 h bin): p(sepsis)" in out and "0.0 % of the attribution on later" in out
    written = json.loads((tmp_path / f"sample-{sample}.json").read_text())
    target = written["target_step"]
    assert target["step"] == 12 and target["share_after_step"] == 0.0
    assert all(v == 0.0 for v in target["per_step"][13:])
    assert all(cell["step"] <= 12 for cell in target["top_cells"])
    assert (tmp_path / f"sample-{sample}-step-12.png").read_bytes()[:4] == b"\x89PNG"
