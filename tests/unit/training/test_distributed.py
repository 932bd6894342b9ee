"""DDP under torchrun on CPU (gloo) gives the numbers of one process with the same batch.

Two ranks train a real medseq GRU on 97 samples in global batches of 16 (the last batch of
one sample leaves rank 1 an empty slice) with a few NaN labels, Adam, a cosine schedule,
clipping and L2. Their final weights must be identical to each other and equal, within
float32 reduction-order noise, to a single process; only rank 0 writes checkpoints; a run
that crashes after epoch 2 and is resumed under torchrun ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medseq.training import distributed

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ddp_worker

WORKER = Path(ddp_worker.__file__)
# float32 all-reduce sums in another order than one process: measured max |diff| 6e-8.
ATOL, RTOL = 1e-6, 1e-5


def _torchrun(out: Path, checkpoint_dir: Path, *, resume: bool, stop: int = 0):
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(WORKER), str(out), str(checkpoint_dir), "1" if resume else "0", str(stop),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)


def _assert_close(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert weights.keys() == reference.keys()
    for name, value in reference.items():
        torch.testing.assert_close(weights[name], value, atol=ATOL, rtol=RTOL, msg=name)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    model, result = ddp_worker.fit(str(tmp_path_factory.mktemp("single")))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, result


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    done = _torchrun(root / "out", root / "ckpt", resume=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.mark.slow
def test_two_ranks_equal_one_process_with_the_same_global_batch(single, two_ranks):
    weights, result = single
    rank0 = load_file(str(two_ranks / "out" / "rank0.safetensors"))
    rank1 = load_file(str(two_ranks / "out" / "rank1.safetensors"))
    for name, value in rank0.items():
        assert torch.equal(rank1[name], value), name  # the ranks never drift apart
    for rank in (0, 1):  # a second fit in the same process reuses the group, same numbers
        assert json.loads((two_ranks / "out" / f"refit{rank}.json").read_text()) is True
    _assert_close(rank0, weights)
    ddp = json.loads((two_ranks / "out" / "result.json").read_text())
    assert ddp["best_epoch"] == result.best_epoch
    for got, want in zip(ddp["history"], result.history, strict=True):
        for key in ("train_loss", "val_loss", "val_auroc", "lr"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key


def test_only_rank_zero_writes_checkpoints(two_ranks):
    writes = [json.loads((two_ranks / "out" / f"writes{r}.json").read_text()) for r in (0, 1)]
    assert writes == [{"n": ddp_worker.EPOCHS}, {"n": 0}]
    assert sorted(p.name for p in (two_ranks / "ckpt").iterdir()) == [
        "best.safetensors",
        "last.pt",
    ]


@pytest.mark.slow
def test_a_crashed_ddp_run_resumes_under_torchrun(single, tmp_path):
    crashed = _torchrun(tmp_path / "out", tmp_path / "ckpt", resume=False, stop=2)
    assert crashed.returncode != 0
    assert torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)["epoch"] == 2
    assert not (tmp_path / "out" / "rank0.safetensors").exists()
    done = _torchrun(tmp_path / "out", tmp_path / "ckpt", resume=True)
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_close(load_file(str(tmp_path / "out" / "rank0.safetensors")), single[0])
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert [r["epoch"] for r in result["history"]] == [1, 2, 3, 4]


def test_a_lone_process_is_not_distributed(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert distributed.current() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.current() == distributed.DistContext(rank=1, world_size=2, local_rank=0)
    assert not distributed.is_main_process()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        distributed.current()
