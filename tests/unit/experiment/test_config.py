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
        ({"model": {}, "baseline": {"kind": "hist_gradient_boosting"}}, "not both"),
        ({"name": "x"}, r"needs a \[model\] or a \[baseline\]"),
        ({"baseline": {"kind": "svm"}}, r"kind must be one of"),
        ({"model": {}, "seeds": []}, "at least one seed"),
    ],
)
def test_bad_configs_name_the_problem(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_config(raw)


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
