"""An install without torch: ``import medseq``, the CLI's help and its torch commands.

torch is not a core dependency (``pyproject.toml``): the extras that run torch models add it.
These tests run the package in a subprocess where ``import torch`` fails as it does when
torch is not installed (a ``sitecustomize`` on the path refuses it), so the checks hold
without building a second environment; ``scripts/check_edge.sh`` (``make edge-check``)
installs ``medseq[edge]`` alone in a fresh venv for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medseq.experiment.config import tomllib  # tomli on Python 3.10

ROOT = Path(__file__).resolve().parents[3]

BLOCK_TORCH = '''
import sys

class _NoTorch:
    """Behave as an environment where torch is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
'''


def run_without_torch(tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -c code args`` where importing torch fails."""
    site = tmp_path / "notorch"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_TORCH)
    path = os.pathsep.join([str(site), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_torch_is_in_the_extras_that_need_it_not_in_core_nor_edge():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not any(dep.startswith("torch") for dep in project["dependencies"])
    for name in ("train", "serve"):
        assert any(dep.startswith("torch") for dep in extras[name]), name
    edge = " ".join(extras["edge"])
    for absent in ("torch", "fastapi", "uvicorn", "medseq["):
        assert absent not in edge, f"medseq[edge] must not pull {absent}"
    assert "onnxruntime" in edge and "scipy" in edge
    # `make setup` installs every extra (through [test]), torch included
    test_extras = " ".join(extras["test"])
    assert "train" in test_extras and "serve" in test_extras


def test_the_blocker_really_hides_torch(tmp_path):
    result = run_without_torch(tmp_path, "import torch")
    assert result.returncode != 0
    assert "No module named 'torch'" in result.stderr


def test_import_medseq_and_the_detector_without_torch(tmp_path):
    result = run_without_torch(
        tmp_path,
        "import medseq, medseq.cli, medseq.monitoring.detector, medseq.monitoring.replay; "
        "print('ok', medseq.__version__)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_cli_help_without_torch(tmp_path):
    for args in (["--help"], ["monitor", "--help"]):
        result = run_without_torch(tmp_path, "from medseq.cli import app; app()", *args)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout
    result = run_without_torch(tmp_path, "from medseq.cli import app; app()", "--help")
    assert "monitor" in result.stdout and "train" in result.stdout


def test_a_torch_command_without_torch_names_the_extra(tmp_path):
    result = run_without_torch(
        tmp_path, "from medseq.cli import app; app()", "train", str(ROOT / "configs/default.toml")
    )
    assert result.returncode == 2
    assert "this command needs the optional module 'torch'" in result.stderr
    assert "pip install 'medseq[train]'" in result.stderr
    assert "Traceback" not in result.stderr
