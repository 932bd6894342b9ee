from pathlib import Path

import pytest

from medseq.experiment.config import load_config, parse_config

CONFIGS = sorted(Path(__file__).resolve().parents[3].joinpath("configs").glob("*.toml"))


def test_minimal_model_config_gets_defaults():
    cfg = parse_config({"name": "x", "model": {"cell": "gru"}})
    assert cfg.data.task == "mortality"
    assert cfg.task_type == "binary"
    assert cfg.seeds == (0,)
    assert cfg.output_dir == "runs/x"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": {}, "modle": {}}, r"top level: unknown keys \['modle'\]"),
        ({"model": {}, "data": {"tsak": "mortality"}}, r"\[data\]: unknown keys \['tsak'\]"),
        ({"model": {}, "data": {"task": "sepsis"}}, r"task must be one of"),
        (
            {"model": {}, "data": {"val_fraction": 1.5}},
            r"val_fraction must be in \(0, 1\), got 1.5",
        ),
        (
            {"model": {}, "task": {"label": {"death": True}}},
            r"dataset 'physionet2012' defines its tasks in Python",
        ),
        ({"baseline": {"features": "raw"}}, r"features must be one of \('inputs', 'history'\)"),
        ({"baseline": {"history_window_hours": 0}}, r"history_window_hours must be >= 1"),
        ({"name": "x"}, r"needs a \[model\] or a \[baseline\]"),
        ({"baseline": {"kind": "svm"}}, r"kind must be one of"),
        ({"model": {}, "seeds": []}, "at least one seed"),
    ],
)
def test_bad_configs_name_the_problem(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_config(raw)


def test_a_baseline_beside_a_model_is_kept():
    cfg = parse_config({"model": {}, "baseline": {"features": "history"}})
    assert cfg.model == {} and cfg.baseline is not None and cfg.baseline.features == "history"


def test_load_config_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ValueError, match=r"bad\.toml: invalid TOML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_parse_and_validate(path):
    """Every shipped config parses, names known model fields and a valid [train] table.

    Model sizes are inferred from the data at training time, so the model section is
    checked against its config class's fields here, and built in the pipeline tests.
    """
    from dataclasses import fields

    from medseq.models.registry import DEFAULT_KIND, model_config_class
    from medseq.schema import check_known_keys
    from medseq.training import TrainConfig

    if "[federated]" in path.read_text():
        from medseq.federated.config import load_federated

        load_federated(path)
        return
    cfg = load_config(path)
    if cfg.model is not None:
        config_class = model_config_class(cfg.model.get("kind", DEFAULT_KIND))
        check_known_keys(path.name, cfg.model, {f.name for f in fields(config_class)})
        TrainConfig.from_dict({"task": cfg.task_type, **cfg.train})


def test_overrides_set_typed_values_without_touching_the_file(tmp_path):
    from medseq.experiment.config import apply_overrides

    raw = {"name": "x", "model": {"cell": "lstm"}, "train": {"epochs": 20}}
    out = apply_overrides(
        raw,
        ["train.epochs=2", "data.inner_val_fraction=0.1", "model.cell=gru", "seeds=[0, 1]",
         "train.progress=false", 'name="trial"'],
    )  # fmt: skip
    assert out["train"]["epochs"] == 2 and out["data"]["inner_val_fraction"] == 0.1
    assert out["model"]["cell"] == "gru" and out["seeds"] == [0, 1]  # a bare word: a string
    assert out["train"]["progress"] is False and out["name"] == "trial"
    assert raw["train"]["epochs"] == 20 and "data" not in raw  # the input is not modified
    cfg = parse_config(out)
    assert cfg.seeds == (0, 1) and cfg.data.inner_val_fraction == 0.1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs", "must look like section.key=value"),
        ("=3", "must look like section.key=value"),
        ("name.first=1", "name is a value, not a table"),
        ("data.tsak=mortality", r"\[data\]: unknown keys \['tsak'\]"),
        ("data.cv_folds=1", "cv_folds must be 0"),
    ],
)
def test_bad_overrides_are_clear_errors_naming_the_file(tmp_path, override, message):
    path = tmp_path / "exp.toml"
    path.write_text('name = "x"\n[model]\ncell = "gru"\n')
    with pytest.raises(ValueError, match=message) as err:
        load_config(path, [override])
    assert str(path) in str(err.value)
