"""Write a bundle's ensemble as one ONNX graph (needs torch; the runtime side does not).

What the graph takes is read from the bundle, never from a table of datasets:

* **input names**: the parameters of the members' ``forward`` that carry data (the
  model vocabulary of :mod:`medseq.models.registry`: ``values``, ``mask``, ``delta``,
  ``lengths``, ``static``, ``tokens``, ``visits``, ``slices``), in ``forward`` order, as
  :func:`medseq.bundle._input_names` picks them for ``Bundle.predict_arrays``;
  ``static`` only when the model config has a ``static_size``;
* **dtypes and shapes**: integer inputs (``lengths``, ``tokens``) int64, the others
  float32, as ``Bundle.predict_arrays`` casts them; feature sizes from the model config;
  ``tokens`` gets a variants axis when the featurizer averages randomised SMILES
  (its ``describe()``: the ``K`` axis of ``tokens``), as its ``transform`` does;
* **dynamic axes**: the batch axis of every input, and the time (steps, visits, tokens,
  slices) axis, except for models listed in :data:`STATIC_TIME` whose graph unrolls a
  loop over time.

The one output ``score`` is exactly ``Bundle.predict_arrays``: the mean over members of
sigmoid (binary, multilabel), softmax (multiclass) or identity (regression) outputs,
``(B,)`` for one output, ``(B, K)`` or ``(B, T', K)`` otherwise. An ensemble is one graph
(members averaged inside it), so a runtime needs no knowledge of how many members there
are.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import onnx
import torch
from torch import nn

from medseq.bundle import Bundle, _probabilities
from medseq.serving.onnx import _HASH_KEY as HASH_KEY
from medseq.serving.onnx import _OUTPUT as OUTPUT
from medseq.serving.onnx import OPSET

logger = logging.getLogger(__name__)

#: Model kinds whose time axis is fixed in the graph, and why.
STATIC_TIME: dict[str, str] = {
    "grud": "its forward fill of the last observation (cummax, which ONNX lacks) is "
    "unrolled into one Max node per step",
}

_INTEGER_INPUTS = ("lengths", "tokens")


class EnsembleGraph(nn.Module):
    """The members of a bundle, averaged as in ``Bundle.predict_arrays``.

    Takes the inputs positionally in the order of ``names`` (ONNX input order) and calls
    each member by keyword, as ``Bundle.predict_arrays`` does.
    """

    def __init__(self, bundle: Bundle, names: list[str]) -> None:
        super().__init__()
        self.members = nn.ModuleList(bundle.members)
        self.names = list(names)
        self.task = bundle.task

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.names, inputs, strict=True))
        outputs = [_probabilities(member(**batch), self.task) for member in self.members]
        mean = torch.stack(outputs).mean(dim=0)
        return mean[:, 0] if mean.dim() == 2 and mean.shape[1] == 1 else mean


def input_names(bundle: Bundle) -> list[str]:
    """The data-carrying parameters of the members' ``forward``, in order."""
    config = bundle.model_config
    names = []
    for name, param in inspect.signature(bundle.members[0].forward).parameters.items():
        if param.annotation in (bool, "bool") or isinstance(param.default, bool):
            continue  # return_attention and other switches
        if name == "static" and not getattr(config, "static_size", 0):
            continue
        names.append(name)
    return names


def _time_steps(bundle: Bundle) -> int:
    """The example length along time: the featurizer's fixed grid for a static time axis."""
    kind = bundle.model_config.kind
    if kind not in STATIC_TIME:
        return 7
    described = bundle.featurizer.describe()
    grid = described.outputs[0]
    n_steps = grid.sizes.get("T")
    if not isinstance(n_steps, int):
        raise ValueError(
            f"ONNX export of a {kind!r} model needs a fixed number of time steps "
            f"({STATIC_TIME[kind]}), but its featurizer "
            f"{bundle.featurizer.state_dict().get('kind')!r} describes no fixed time axis T"
        )
    return n_steps


def example_inputs(bundle: Bundle, names: list[str], batch: int = 2) -> dict[str, torch.Tensor]:
    """Inputs of the right names, dtypes and ranks to trace the members with.

    Values are random: a traced graph records operations, not values; the lengths differ
    between rows so no length-dependent branch is frozen at one value.
    """
    config, t = bundle.model_config, _time_steps(bundle)
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([t] + [max(1, t // 2)] * (batch - 1), dtype=torch.int64)
    width = int(getattr(config, "input_size", 0) or getattr(config, "in_channels", 0) or 1)
    vocab = int(getattr(config, "vocab_size", 0) or 1)
    makers = {
        "values": lambda: torch.randn(batch, t, width, generator=gen),
        "mask": lambda: (torch.rand(batch, t, width, generator=gen) > 0.5).float(),
        "delta": lambda: torch.rand(batch, t, width, generator=gen),
        "lengths": lambda: lengths,
        "static": lambda: torch.randn(batch, config.static_size, generator=gen),
        "visits": lambda: (torch.rand(batch, t, vocab, generator=gen) > 0.8).float(),
        "tokens": lambda: _tokens(bundle, batch, t, lengths, gen),
        "slices": lambda: torch.rand(batch, t, config.slice_size, config.slice_size, generator=gen),
    }
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(
            f"{type(bundle.members[0]).__name__}.forward takes {unknown}, which ONNX export "
            f"does not know how to shape; known inputs: {sorted(makers)} (add it to "
            "medseq.serving.onnx_export.example_inputs)"
        )
    return {name: makers[name]() for name in names}


def _tokens(bundle: Bundle, batch: int, t: int, lengths: torch.Tensor, gen) -> torch.Tensor:
    vocab = bundle.model_config.vocab_size
    tokens = torch.randint(1, vocab, (batch, t), generator=gen)
    tokens = tokens.masked_fill(torch.arange(t) >= lengths.unsqueeze(1), 0)
    n_variants = int(bundle.featurizer.describe().output("tokens").sizes.get("K", 1))
    return tokens if n_variants == 1 else tokens.unsqueeze(1).repeat(1, n_variants, 1)


def dynamic_axes(bundle: Bundle, inputs: dict[str, torch.Tensor]) -> dict[str, dict[int, str]]:
    """Batch axis everywhere; the time axis (last for tokens, 1 otherwise) unless fixed."""
    static_time = bundle.model_config.kind in STATIC_TIME
    axes: dict[str, dict[int, str]] = {}
    for name, tensor in inputs.items():
        axes[name] = {0: "batch"}
        if tensor.dim() >= 2 and name != "static" and not static_time:
            axes[name][tensor.dim() - 1 if name == "tokens" else 1] = "time"
    axes[OUTPUT] = {0: "batch"}
    return axes


def _cummax_symbolic(g, x, dim):
    """``cummax`` along a static dimension as a chain of ``Max`` (values; indices unused)."""
    from torch.onnx import symbolic_helper

    dim = symbolic_helper._get_const(dim, "i", "dim")
    n = symbolic_helper._get_tensor_dim_size(x, dim)
    if n is None:
        raise ValueError("cummax export needs a static length along its dimension")
    sizes = g.op("Constant", value_t=torch.ones(n, dtype=torch.int64))
    parts = g.op("Split", x, sizes, axis_i=dim, outputs=n)
    running = [parts[0]] if n > 1 else [parts]
    for part in parts[1:] if n > 1 else []:
        running.append(g.op("Max", running[-1], part))
    values = g.op("Concat", *running, axis_i=dim)
    return values, g.op("Cast", values, to_i=7)  # int64 "indices", never read by GRU-D


@contextmanager
def _cummax_registered(opset: int):
    torch.onnx.register_custom_op_symbolic("aten::cummax", _cummax_symbolic, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::cummax", opset)


def write_onnx(bundle: Bundle, output: Path, content_sha256: str, opset: int = OPSET) -> Path:
    """Trace ``bundle``'s ensemble to ``output`` and stamp the bundle's content hash."""
    names = input_names(bundle)
    inputs = example_inputs(bundle, names)
    module = EnsembleGraph(bundle, names).eval()
    with warnings.catch_warnings(), _cummax_registered(opset), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            module, tuple(inputs.values()), str(output), input_names=names,
            output_names=[OUTPUT], dynamic_axes=dynamic_axes(bundle, inputs),
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    graph = onnx.load(str(output))
    onnx.checker.check_model(graph)
    entry = graph.metadata_props.add()
    entry.key, entry.value = HASH_KEY, content_sha256
    onnx.save(graph, str(output))
    logger.info("exported %s member(s) to %s, inputs %s", len(bundle.members), output, names)
    return output
