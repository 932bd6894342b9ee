"""One rank of the DDP tests: ``torchrun --nproc_per_node 2 ddp_worker.py OUT CKPT RESUME STOP``.

Also run as a single process by the test itself (:func:`fit`) for the reference numbers.
Every rank writes its final weights (``rank<r>.safetensors``), the number of checkpoint
files it wrote (``writes<r>.json``) and whether a second fit in the same process gave the
same weights (``refit<r>.json``); rank 0 also writes the ``FitResult`` (``result.json``).
``STOP > 0`` ends every rank abruptly after its STOP-th epoch, like a crash.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_toys import make_data

from medseq.models import ModelConfig, build_model
from medseq.training import FitResult, TrainConfig, Trainer
from medseq.training import checkpoint as ckpt

EPOCHS = 4
N_TRAIN = 97  # 6 global batches of 16 and one of 1: rank 1 gets an empty slice there


def data() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Learnable toy data; a few NaN labels check that the loss shares count labels."""
    train = make_data(N_TRAIN)
    train["y"][[3, 20, 50]] = np.nan
    return train, make_data(48, seed=1)


def config(checkpoint_dir: str | None) -> TrainConfig:
    return TrainConfig(
        epochs=EPOCHS, batch_size=16, lr=1e-2, monitor="auroc", patience=None, seed=3,
        scheduler="cosine", clip_grad_norm=1.0, l2=1e-4, checkpoint_dir=checkpoint_dir,
        num_threads=1, progress=False,
    )  # fmt: skip


def fit(checkpoint_dir: str | None, resume: bool = False) -> tuple[torch.nn.Module, FitResult]:
    """A real medseq GRU (no dropout, so DDP and one process draw no random masks)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_size=3, hidden_size=8, static_size=2, pooling="mean"))
    train, val = data()
    return model, Trainer(config(checkpoint_dir)).fit(model, train, val, resume=resume)


def main(out: Path, checkpoint_dir: str, resume: bool, stop: int) -> None:
    rank = int(os.environ["RANK"])
    writes = {"n": 0}
    save = ckpt.save_checkpoint

    def counting_save(path, state):  # counts this rank's checkpoint writes
        writes["n"] += 1
        (out / f"writes{rank}.json").write_text(json.dumps(writes))
        result = save(path, state)
        if stop and state.epoch == stop:
            os._exit(3)  # a crash right after the checkpoint of epoch ``stop``
        return result

    ckpt.save_checkpoint = counting_save
    (out / f"writes{rank}.json").write_text(json.dumps(writes))
    if stop and rank > 0:
        Trainer._save = _exit_after(Trainer._save, stop)
    model, result = fit(checkpoint_dir, resume)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"rank{rank}.safetensors"))
    if rank == 0:
        (out / "result.json").write_text(json.dumps(result.to_dict()))
    if not resume:  # a second fit in the same process reuses the process group
        again, _ = fit(None)
        same = all(torch.equal(v, state[k]) for k, v in again.state_dict().items())
        (out / f"refit{rank}.json").write_text(json.dumps(same))


def _exit_after(save, stop: int):
    def wrapped(self, run):  # ranks > 0 never call save_checkpoint, so they stop here
        save(self, run)
        if run.epoch == stop:
            os._exit(3)

    return wrapped


if __name__ == "__main__":
    out_dir, ckpt_dir, resume_flag, stop_after = sys.argv[1:5]
    main(Path(out_dir), ckpt_dir, resume_flag == "1", int(stop_after))
