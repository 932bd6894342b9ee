"""ConvRNN: shapes, padding, chunked inference equal to one pass, bounded memory."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from medseq.models.conv_rnn import ConvRNN, SignalModelConfig

SMALL = {"conv_channels": (4, 8), "conv_strides": (4, 2), "kernel_size": 5, "hidden_size": 8}


def _model(**overrides) -> ConvRNN:
    torch.manual_seed(0)
    return ConvRNN(SignalModelConfig(**{**SMALL, **overrides})).eval()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes(cell, bidirectional):
    x = torch.randn(3, 203, 2)
    lengths = torch.tensor([203, 100, 8])
    rec = _model(cell=cell, bidirectional=bidirectional, in_channels=2, n_outputs=5)
    assert rec(x, lengths).shape == (3, 5)
    seq = _model(cell=cell, bidirectional=bidirectional, in_channels=2, mode="sequence")
    assert seq(x, lengths).shape == (3, 26, 4)  # ceil(203 / 8) steps
    assert seq.output_lengths(lengths).tolist() == [26, 13, 1]


@pytest.mark.parametrize("mode", ["recording", "sequence"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_changes_the_valid_outputs(mode, bidirectional):
    model = _model(mode=mode, bidirectional=bidirectional)
    x = torch.randn(1, 100, 1)
    alone = model(x, torch.tensor([100]))
    padded = torch.cat([x, torch.full((1, 60, 1), 7.0)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 160, 1)])
    together = model(batch, torch.tensor([100, 160]))[:1]
    if mode == "sequence":
        together = together[:, : alone.shape[1]]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["recording", "sequence"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_chunked_inference_equals_one_pass(mode, cell):
    model = _model(mode=mode, cell=cell, num_layers=2)
    x = torch.randn(2, 5003, 1)
    with torch.no_grad():
        full = model(x, torch.tensor([5003, 5003]))
        chunked = model.chunked_forward(x, chunk_samples=512)
    assert chunked.shape == full.shape
    assert (chunked - full).abs().max().item() <= 1e-5


def test_chunked_errors():
    model = _model()
    with pytest.raises(ValueError, match="multiple of total_stride=8"):
        model.chunked_forward(torch.randn(1, 100, 1), chunk_samples=12)
    with pytest.raises(ValueError, match="bidirectional=False"):
        _model(bidirectional=True).chunked_forward(torch.randn(1, 64, 1), chunk_samples=16)
    state = model.forward_chunk(torch.randn(1, 13, 1), model.init_state())[1]
    with pytest.raises(ValueError, match="only the last chunk"):
        model.forward_chunk(torch.randn(1, 16, 1), state)
    with pytest.raises(ValueError, match=r"\(B, T, 1\)"):
        model(torch.randn(1, 16, 2), torch.tensor([16]))


def test_config_round_trip_and_validation():
    config = SignalModelConfig(**SMALL, mode="sequence")
    assert SignalModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.total_stride == 8
    with pytest.raises(ValueError, match="unknown keys"):
        SignalModelConfig.from_dict({"hidden": 3})
    with pytest.raises(ValueError, match="same length"):
        SignalModelConfig(conv_channels=(4,), conv_strides=(2, 2))
    with pytest.raises(ValueError, match="mode must be"):
        SignalModelConfig(mode="beats")
    with pytest.raises(ValueError, match="stride must be <= kernel_size"):
        SignalModelConfig(conv_strides=(4, 4, 20))
    with pytest.raises(ValueError, match=r"SignalModelConfig.pooling must be one of"):
        SignalModelConfig(pooling="max")
    with pytest.raises(TypeError, match=r"SignalModelConfig.hidden_size must be an int"):
        SignalModelConfig(hidden_size=8.5)
    with pytest.raises(ValueError, match=r"SignalModelConfig.conv_channels must be >= 1"):
        SignalModelConfig(conv_channels=(4, 0, 8))
    with pytest.raises(ValueError, match=r"SignalModelConfig.dropout must be in \[0, 1\)"):
        SignalModelConfig(dropout=1.0)
    with pytest.raises(ValueError, match=r"SignalModelConfig.kind must be one of"):
        SignalModelConfig(kind="grud")


def test_registered_as_conv_rnn_kind():
    from medseq.models import build_model, model_config_from_dict

    raw = {"kind": "conv_rnn", **SMALL, "conv_channels": [4, 8], "conv_strides": [4, 2]}
    config = model_config_from_dict({**raw, "n_outputs": 3})
    assert isinstance(config, SignalModelConfig) and config.n_outputs == 3
    assert isinstance(build_model(config), ConvRNN)
    assert model_config_from_dict(config.to_dict()) == config


def test_last_pooling_reads_the_last_valid_step_also_in_chunks():
    model = _model(conv_channels=(), conv_strides=(), in_channels=3, pooling="last")
    x = torch.randn(2, 12, 3)
    with torch.no_grad():
        out = model(x, torch.tensor([12, 5]))
        alone = model(x[1:, :5], torch.tensor([5]))
        chunked = model.chunked_forward(x[:1], chunk_samples=5)
    torch.testing.assert_close(out[1:], alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[:1], chunked, atol=1e-6, rtol=1e-5)
    # Changing a step after the last valid one changes nothing.
    x[1, 7] += 5.0
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor([12, 5]))[1:], alone, atol=1e-6, rtol=1e-5)


def test_beat_sequence_labelling_without_convolutions():
    # One step per beat: inputs are beat feature vectors, one logit vector per beat.
    model = _model(conv_channels=(), conv_strides=(), in_channels=6, mode="sequence")
    out = model(torch.randn(2, 40, 6), torch.tensor([40, 25]))
    assert out.shape == (2, 40, 4)


_MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys, torch
    from medseq.models.conv_rnn import ConvRNN, SignalModelConfig
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = SignalModelConfig(conv_channels=(8, 16), conv_strides=(8, 4), hidden_size=16)
    model = ConvRNN(config).eval()
    x = torch.randn(1, int(sys.argv[1]), 1)
    with torch.no_grad():
        model.chunked_forward(x[:, :4096], chunk_samples=4096)  # warm up allocators
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model.chunked_forward(x, chunk_samples=32768)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024)
    """
)


def _inference_growth_mb(n_samples: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(n_samples)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def test_chunked_inference_memory_does_not_grow_with_record_length():
    # 650,000 samples is one MIT-BIH record; ten times longer must not need more memory
    # beyond the signal (allocated before the measurement starts).
    short = _inference_growth_mb(650_000)
    long = _inference_growth_mb(6_500_000)
    assert long < short + 8.0, (short, long)
