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
