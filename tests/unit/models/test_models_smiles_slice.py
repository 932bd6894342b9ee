"""SmilesRNN and SliceRNN: configs, shapes, padding invariance, attention."""

import json

import pytest
import torch

from medseq.models import slice_rnn
from medseq.models.slice_rnn import SliceRNN, SliceRNNConfig
from medseq.models.smiles_rnn import SmilesRNN, SmilesRNNConfig


def test_smiles_config_round_trip_and_errors():
    config = SmilesRNNConfig(vocab_size=20, hidden_size=8, cell="lstm")
    assert SmilesRNNConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown keys \['hiden_size'\]"):
        SmilesRNNConfig.from_dict({"vocab_size": 20, "hiden_size": 8})
    with pytest.raises(ValueError, match="cell must be one of"):
        SmilesRNNConfig(vocab_size=20, cell="rnn")
    with pytest.raises(ValueError, match="missing required key 'vocab_size'"):
        SmilesRNNConfig.from_dict({"hidden_size": 8})


def test_smiles_rnn_ignores_padding_and_attends_only_to_tokens():
    torch.manual_seed(0)
    model = SmilesRNN(
        SmilesRNNConfig(
            vocab_size=12, hidden_size=8, embedding_size=6, attention_size=5, n_outputs=3
        )
    ).eval()
    tokens = torch.tensor([[2, 3, 4, 0, 0], [5, 6, 7, 8, 9]])
    lengths = torch.tensor([3, 5])
    logits, weights = model(tokens=tokens, lengths=lengths, return_attention=True)
    assert logits.shape == (2, 3) and weights.shape == (2, 5)
    assert torch.all(weights[0, 3:] == 0)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    # Padding of any length or content leaves the logits unchanged.
    wider = torch.cat([tokens, torch.tensor([[7, 7], [0, 0]])], dim=1)
    torch.testing.assert_close(model(tokens=wider, lengths=lengths), logits)
    alone = model(tokens=tokens[:1, :3], lengths=lengths[:1])
    torch.testing.assert_close(alone, logits[:1])
    with pytest.raises(ValueError, match="token ids must be in"):
        model(tokens=torch.tensor([[12]]), lengths=torch.tensor([1]))
    with pytest.raises(ValueError, match="integer tensor"):
        model(tokens=tokens.float(), lengths=lengths)


def test_slice_config_round_trip_and_errors():
    config = SliceRNNConfig(slice_size=28, channels=[4, 8])
    assert config.channels == (4, 8)
    assert SliceRNNConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="below one pixel"):
        SliceRNNConfig(slice_size=4, channels=(2, 2, 2, 2))
    with pytest.raises(ValueError, match="unknown keys"):
        SliceRNNConfig.from_dict({"slice_size": 28, "depth": 3})


def test_slice_rnn_shapes_and_attention_over_slices():
    torch.manual_seed(0)
    model = SliceRNN(SliceRNNConfig(slice_size=28, channels=(4, 8), hidden_size=6)).eval()
    slices = torch.rand(3, 10, 28, 28)
    logits, weights = model(slices=slices, return_attention=True)
    assert logits.shape == (3, 1) and weights.shape == (3, 10)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    torch.testing.assert_close(model(slices=slices[:1]), logits[:1])
    with pytest.raises(ValueError, match=r"\(B, D, 28, 28\)"):
        model(slices=torch.rand(3, 10, 14, 14))


def test_smiles_rnn_length_buckets_equal_one_padded_pass():
    from medseq.models import smiles_rnn

    torch.manual_seed(0)
    model = SmilesRNN(SmilesRNNConfig(vocab_size=30, hidden_size=8, embedding_size=6)).eval()
    lengths = torch.randint(1, 40, (50,))
    tokens = torch.randint(1, 30, (50, 40)) * (torch.arange(40) < lengths[:, None])
    bucketed, w_bucketed = model(tokens=tokens, lengths=lengths, return_attention=True)
    assert bucketed.shape[0] > smiles_rnn.BUCKET_SIZE
    whole, w_whole = model._pool(tokens[:, : int(lengths.max())], lengths)
    torch.testing.assert_close(bucketed, model.out(whole), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w_bucketed, w_whole, rtol=1e-4, atol=1e-6)


def test_slice_rnn_test_time_flips_average_the_eight_mirror_images():
    torch.manual_seed(0)
    config = SliceRNNConfig(slice_size=28, channels=(4, 8), hidden_size=6, test_time_flips=True)
    model = SliceRNN(config).eval()
    plain = SliceRNN(SliceRNNConfig(slice_size=28, channels=(4, 8), hidden_size=6)).eval()
    plain.load_state_dict(model.state_dict())
    slices = torch.rand(2, 10, 28, 28)
    logits, weights = model(slices=slices, return_attention=True)
    views = [plain(slices=slices.flip(d) if d else slices) for d in slice_rnn.MIRRORS]
    torch.testing.assert_close(logits, torch.stack(views).mean(0))
    torch.testing.assert_close(weights, plain(slices=slices, return_attention=True)[1])
    # The average over the mirror group does not depend on the orientation given ...
    torch.testing.assert_close(model(slices=slices.flip(2, 3)), logits)
    # ... which a single pass does.
    assert not torch.allclose(plain(slices=slices.flip(2, 3)), plain(slices=slices))
    # Training mode runs one pass per volume: the augmentation, not the model, flips.
    model.train()
    torch.manual_seed(1)
    one = model(slices=slices)
    plain.train()
    torch.manual_seed(1)
    torch.testing.assert_close(one, plain(slices=slices))
    with pytest.raises(TypeError, match="test_time_flips"):
        SliceRNNConfig(slice_size=28, test_time_flips="yes")
