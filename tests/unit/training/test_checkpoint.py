import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from medseq.training import Checkpoint, TrainConfig, load_checkpoint, save_checkpoint, unwrap_model
from medseq.training.checkpoint import (
    capture_rng_state,
    model_state,
    restore_rng_state,
    save_weights,
)


def _checkpoint() -> tuple[nn.Module, Checkpoint]:
    model = nn.GRU(3, 4)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 2, 3))[0].sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    sched.step(0.5)
    state = Checkpoint(
        model=model_state(model),
        optimizer=opt.state_dict(),
        scheduler=sched.state_dict(),
        epoch=2,
        best_score=0.7,
        best_epoch=1,
        best_model=model_state(model),
        history=[{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.6}],
        config_json=TrainConfig(scheduler="plateau").to_json(),
        rng=capture_rng_state(),
    )
    return model, state


def test_round_trip_with_weights_only(tmp_path):
    model, state = _checkpoint()
    path = save_checkpoint(tmp_path / "last.pt", state)
    torch.load(path, weights_only=True)  # plain data only: no pickled objects
    loaded = load_checkpoint(path)
    assert loaded.epoch == 2 and loaded.best_epoch == 1 and loaded.history == state.history
    assert TrainConfig.from_json(loaded.config_json) == TrainConfig(scheduler="plateau")
    for key, value in state.model.items():
        assert torch.equal(loaded.model[key], value)
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(loaded.optimizer)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_rng_states_restore_the_same_draws():
    state = capture_rng_state()
    before = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    after = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(before[0], after[0])
    assert np.array_equal(before[1], after[1]) and before[2] == after[2]


def test_unwrap_strips_wrappers():
    inner = nn.Linear(2, 1)
    assert unwrap_model(nn.DataParallel(inner)) is inner
    assert set(model_state(nn.DataParallel(inner))) == {"weight", "bias"}

    class Compiled(nn.Module):  # what torch.compile returns keeps the module as _orig_mod
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

    assert unwrap_model(Compiled(inner)) is inner


def test_best_weights_are_safetensors(tmp_path):
    layer = nn.Linear(2, 1)
    path = save_weights(tmp_path / "best.safetensors", layer.state_dict())
    loaded = load_file(str(path))
    assert torch.equal(loaded["weight"], layer.weight.detach())


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pt: not a readable medseq checkpoint"):
        load_checkpoint(bad)
    torch.save({"format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format_version 99"):
        load_checkpoint(tmp_path / "future.pt")


def test_arbitrary_objects_are_refused(tmp_path):
    torch.save({"format_version": 1, "obj": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable medseq checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


class _Payload:
    pass
