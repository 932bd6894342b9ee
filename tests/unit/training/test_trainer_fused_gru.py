"""``TrainConfig.fused_gru``: Trainer trains through the fused GRU path, to nn.GRU's result."""

from __future__ import annotations

import numpy as np
import torch
from training_toys import make_data

from medseq.models import ModelConfig, build_model, sequence_classifier
from medseq.models.fused_select import current_mode
from medseq.training import TrainConfig, Trainer


def _fit(mode: str | None):
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_size=3, hidden_size=8, static_size=2, num_layers=2))
    cfg = TrainConfig(epochs=2, lr=1e-2, batch_size=32, num_threads=1, progress=False,
                      fused_gru=mode)  # fmt: skip
    result = Trainer(cfg).fit(model, make_data(64), make_data(32, seed=1))
    return model, result


def test_fit_with_fused_gru_matches_nn_gru(monkeypatch):
    monkeypatch.delenv("MEDSEQ_FUSED_GRU", raising=False)
    calls = []

    def counting(*args, **kwargs):  # the real fused path, counted
        calls.append(1)
        return fused_gru(*args, **kwargs)

    fused_gru = sequence_classifier.fused_gru
    monkeypatch.setattr(sequence_classifier, "fused_gru", counting)
    plain, plain_result = _fit("off")
    assert not calls
    fused, fused_result = _fit("auto")
    assert len(calls) == 2 * 2  # 2 epochs of 2 batches; validation keeps nn.GRU
    assert current_mode() == "auto"  # the Trainer's block ends with fit: the default again
    losses = [[r["train_loss"] for r in res.history] for res in (plain_result, fused_result)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    fused_state = fused.state_dict()
    for name, a in plain.state_dict().items():
        torch.testing.assert_close(fused_state[name], a, atol=1e-4, rtol=1e-4, msg=name)
