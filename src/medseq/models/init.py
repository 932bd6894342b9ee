"""Initialisation of recurrent weights.

``init_recurrent_(model)`` finds every recurrent weight group in ``model`` (torch's fused
``nn.RNN``/``nn.LSTM``/``nn.GRU`` and their cells, medseq's reference cells and GRU-D) and sets

* hidden-to-hidden weights ``weight_hh`` to an orthogonal matrix **per gate block**
  (Saxe, McClelland & Ganguli, 2014, "Exact solutions to the nonlinear dynamics of learning in
  deep linear neural networks"), so every ``(H, H)`` block ``W`` has ``W^T W = I``;
* input-to-hidden weights ``weight_ih`` to Xavier-uniform per gate block (Glorot & Bengio,
  2010): ``U(-a, a)``, ``a = sqrt(6 / (fan_in + H))``;
* biases to zero, except the LSTM forget gate, whose summed bias ``b_if + b_hf`` is 1
  (Jozefowicz, Zaremba & Sutskever, 2015): ``b_if = 1``, ``b_hf = 0``.

Other layers (linear heads, attention, static MLP) keep torch's defaults.
"""

from __future__ import annotations

from torch import Tensor, nn

from medseq.models.cells import LSTMCell

_LSTM_TYPES = (nn.LSTM, nn.LSTMCell, LSTMCell)


def _blocks(weight: Tensor, hidden_size: int) -> list[Tensor]:
    return list(weight.data.split(hidden_size, dim=0))


def _recurrent_groups(module: nn.Module) -> dict[str, dict[str, nn.Parameter]]:
    """Direct parameters grouped by suffix: ``{"_l0": {"weight_ih": p, "weight_hh": p, ...}}``."""
    groups: dict[str, dict[str, nn.Parameter]] = {}
    for name, param in module.named_parameters(recurse=False):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if name.startswith(kind):
                groups.setdefault(name[len(kind) :], {})[kind] = param
    return {suffix: group for suffix, group in groups.items() if "weight_hh" in group}


def init_group_(group: dict[str, nn.Parameter], lstm: bool = False) -> None:
    """Initialise one ``{weight_ih, weight_hh, bias_ih?, bias_hh?}`` group in place."""
    weight_hh = group["weight_hh"]
    hidden = weight_hh.shape[1]
    for block in _blocks(weight_hh, hidden):
        nn.init.orthogonal_(block)
    if "weight_ih" in group:
        for block in _blocks(group["weight_ih"], hidden):
            nn.init.xavier_uniform_(block)
    for key in ("bias_ih", "bias_hh"):
        if group.get(key) is not None:
            nn.init.zeros_(group[key])
    if lstm and group.get("bias_ih") is not None:
        group["bias_ih"].data[hidden : 2 * hidden] = 1.0  # gate order (i, f, g, o)


def init_recurrent_(model: nn.Module) -> int:
    """Apply the scheme above to every recurrent weight group in ``model``, in place.

    Returns
    -------
    int
        The number of weight groups initialised (one per layer and direction).
    """
    count = 0
    for module in model.modules():
        lstm = isinstance(module, _LSTM_TYPES)
        for group in _recurrent_groups(module).values():
            init_group_(group, lstm=lstm)
            count += 1
    return count
