"""Kill a training process with SIGKILL after its 2nd checkpoint, resume it in a new one.

The resumed run must end with exactly the weights and metrics of an uninterrupted run with
the same seed. The toy model uses dropout, so this also checks that the RNG states travel
in the checkpoint, and a cosine schedule and Adam, so their states do too.
"""

import json
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medseq.training import load_checkpoint

EPOCHS = 6
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {toys_dir!r})
    import torch
    from safetensors.torch import save_file
    from training_toys import TinyGRU, make_data
    from medseq.training import TrainConfig, Trainer

    checkpoint_dir, out, resume, sleep_s = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

    class Slow(TinyGRU):  # sleeps per training batch, so the test can kill it mid-run
        def forward(self, *args, **kwargs):
            if self.training:
                time.sleep(float(sleep_s))
            return super().forward(*args, **kwargs)

    torch.manual_seed(0)
    model = Slow()
    config = TrainConfig(
        epochs={epochs}, batch_size=32, lr=1e-2, monitor="auroc", patience=None, seed=7,
        scheduler="cosine", clip_grad_norm=1.0, l2=1e-4, checkpoint_dir=checkpoint_dir,
        num_threads=1, progress=False,
    )
    result = Trainer(config).fit(
        model, make_data(128), make_data(64, seed=1), resume=resume == "1"
    )
    save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, out + ".safetensors")
    with open(out + ".json", "w") as handle:
        json.dump(result.to_dict(), handle)
    """
)


def _start(script: Path, ckpt: Path, out: Path, resume: bool, sleep_s: float):
    args = [sys.executable, str(script), str(ckpt), str(out), "1" if resume else "0", str(sleep_s)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _completed_epochs(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, pickle.UnpicklingError):
        return 0


def _wait_for_epoch(process, last: Path, epoch: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _completed_epochs(last) < epoch:
        if process.poll() is not None:
            pytest.fail(f"training exited early ({process.returncode}): {process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no checkpoint of epoch {epoch} after {timeout_s} s")
        time.sleep(0.02)


def _finish(process) -> None:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output


def _without_seconds(result: dict) -> dict:
    history = [{k: v for k, v in r.items() if k != "seconds"} for r in result["history"]]
    return {**result, "history": history, "checkpoint_dir": None}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_killed_then_resumed_run_equals_an_uninterrupted_run(tmp_path):
    script = tmp_path / "train.py"
    toys_dir = str(Path(__file__).resolve().parent)
    script.write_text(SCRIPT.format(toys_dir=toys_dir, epochs=EPOCHS))
    killed_dir, whole_dir = tmp_path / "killed", tmp_path / "whole"

    whole = _start(script, whole_dir, tmp_path / "whole", resume=False, sleep_s=0.0)
    victim = _start(script, killed_dir, tmp_path / "resumed", resume=False, sleep_s=0.1)
    _wait_for_epoch(victim, killed_dir / "last.pt", 2)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    done_at_kill = load_checkpoint(killed_dir / "last.pt").epoch
    assert 2 <= done_at_kill < EPOCHS

    _finish(_start(script, killed_dir, tmp_path / "resumed", resume=True, sleep_s=0.0))
    _finish(whole)

    resumed = json.loads((tmp_path / "resumed.json").read_text())
    reference = json.loads((tmp_path / "whole.json").read_text())
    assert len(resumed["history"]) == EPOCHS
    assert _without_seconds(resumed) == _without_seconds(reference)
    resumed_w = load_file(str(tmp_path / "resumed.safetensors"))
    reference_w = load_file(str(tmp_path / "whole.safetensors"))
    assert resumed_w.keys() == reference_w.keys()
    for name, value in reference_w.items():
        assert torch.equal(resumed_w[name], value), name
