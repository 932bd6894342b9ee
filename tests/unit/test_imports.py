"""Import cost: the package and its CLI must start without torch or the training stack."""

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"{statement}; import sys; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_medseq_is_light():
    loaded = _loaded_after("import medseq")
    assert "torch" not in loaded
    assert "sklearn" not in loaded


def test_cli_import_does_not_load_torch():
    loaded = _loaded_after("import medseq.cli")
    assert "torch" not in loaded
    assert "medseq.training" not in loaded


def test_models_do_not_import_training_or_features():
    loaded = _loaded_after("import medseq.models")
    assert not {"medseq.training", "medseq.features", "medseq.sources"} & loaded


def test_serving_needs_no_training_dependency():
    loaded = _loaded_after(
        "import medseq.serving.api, medseq.serving.service, medseq.serving.engine, medseq.bundle; "
        "import medseq.serving.sets, medseq.evaluation.conformal, medseq.evaluation.selective; "
        "import medseq.drift, medseq.serving.drift_routes"
    )
    assert not {"sklearn", "scipy", "wfdb", "matplotlib", "captum"} & loaded
    assert "medseq.training" not in loaded


def test_serve_command_and_every_dataset_spec_load_without_training_dependencies():
    """What `medseq serve` imports before the bundle (CLI logging, the app, the server) and
    every dataset spec, as the serve-only install has them: no sklearn, scipy, wfdb, RDKit,
    and not medseq.training (scripts/check_serve_only.sh installs it for real)."""
    loaded = _loaded_after(
        "import medseq.cli; medseq.cli._setup_logging(False); "
        "import medseq.serving.server, medseq.serving.api, medseq.serving.onnx; "
        "from medseq.datasets import DATASETS, get_dataset; "
        "specs = [get_dataset(name) for name in DATASETS]"
    )
    assert not {"sklearn", "scipy", "wfdb", "rdkit"} & loaded
    assert "medseq.training" not in loaded


def test_core_dependencies_leave_training_to_extras():
    from pathlib import Path

    from medseq.experiment.config import tomllib  # tomli on Python 3.10

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    for heavy in ("scikit-learn", "scipy", "wfdb", "matplotlib", "captum", "fastapi"):
        assert heavy not in core, f"{heavy} belongs in an extra, not the core install"
    serve = " ".join(project["optional-dependencies"]["serve"])
    assert "scikit-learn" not in serve and "medseq[train]" not in serve


def test_a_missing_extra_is_named():
    from medseq.cli import missing_extra_message

    err = ModuleNotFoundError("No module named 'sklearn'", name="sklearn")
    message = missing_extra_message(err)
    assert "pip install 'medseq[train]'" in message
