"""Doctor AI and RETAIN: contracts, padding, and RETAIN's exact per-code contributions."""

from __future__ import annotations

import pytest
import torch

from medseq.models import build_model, model_config_from_dict
from medseq.models.doctorai import DoctorAI, DoctorAIConfig
from medseq.models.retain import Retain, RetainConfig


def _visits(batch=4, steps=5, codes=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, steps, codes, generator=g) < 0.3).float()
    lengths = torch.tensor([5, 3, 1, 2])[:batch]
    for b in range(batch):
        x[b, lengths[b] :] = 0
    return x, lengths


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_retain_contributions_sum_to_the_logit_minus_bias(n_outputs):
    torch.manual_seed(0)
    model = Retain(RetainConfig(vocab_size=12, n_outputs=n_outputs, embedding_size=8))
    model.train()  # contributions switch to evaluation mode by themselves
    x, lengths = _visits()
    out = model.contributions(x, lengths)
    omega = out["contributions"]
    assert omega.shape == (4, 5, 12, n_outputs)
    total = omega.sum(dim=(1, 2))
    torch.testing.assert_close(total, out["logits"] - out["bias"], atol=1e-5, rtol=0)
    assert (omega[x == 0] == 0).all()  # absent codes contribute nothing
    assert model.training  # mode restored
    alpha = out["alpha"]
    torch.testing.assert_close(alpha.sum(1), torch.ones(4))
    assert (alpha[1, 3:] == 0).all() and (alpha[2, 1:] == 0).all()


def test_retain_reads_time_backwards_and_ignores_padding():
    torch.manual_seed(1)
    model = Retain(RetainConfig(vocab_size=12, embedding_size=8)).eval()
    x, lengths = _visits()
    padded = torch.cat([x, torch.ones(4, 3, 12)], dim=1)  # garbage after the lengths
    torch.testing.assert_close(model(padded, lengths), model(x, lengths))
    # The code-level attention of the last visit sees only that visit (reverse-time GRU).
    _, _, beta = model(x[:1], lengths[:1], return_attention=True)
    _, _, beta_last = model(x[:1, 4:5], torch.tensor([1]), return_attention=True)
    torch.testing.assert_close(beta[0, 4], beta_last[0, 0])


def test_doctorai_uses_the_state_after_the_last_visit():
    torch.manual_seed(0)
    model = DoctorAI(DoctorAIConfig(vocab_size=12, n_outputs=7, hidden_size=8)).eval()
    x, lengths = _visits()
    out = model(x, lengths)
    assert out.shape == (4, 7)
    changed = x.clone()
    changed[1, 3:] = 1.0  # after subject 1's last visit: no effect
    torch.testing.assert_close(model(changed, lengths)[1], out[1])
    changed[1, 2] = 1 - changed[1, 2]  # its last visit: an effect
    assert not torch.allclose(model(changed, lengths)[1], out[1])
    with pytest.raises(ValueError, match=r"visits must be \(B, T, 12\)"):
        model(x[..., :5], lengths)


def test_configs_round_trip_through_the_registry():
    for raw in (
        {"kind": "doctorai", "vocab_size": 9, "n_outputs": 4},
        {"kind": "retain", "vocab_size": 9, "dropout_context": 0.1},
    ):
        config = model_config_from_dict(raw)
        assert model_config_from_dict(config.to_dict()) == config
        assert isinstance(build_model(config), (DoctorAI, Retain))
    with pytest.raises(ValueError, match="unknown keys"):
        model_config_from_dict({"kind": "retain", "vocab_size": 9, "hidden_size": 4})
    with pytest.raises(ValueError, match="missing required key 'vocab_size'"):
        model_config_from_dict({"kind": "doctorai"})
    with pytest.raises(ValueError, match=r"dropout_embedding must be in \[0, 1\)"):
        RetainConfig(vocab_size=9, dropout_embedding=1.5)
