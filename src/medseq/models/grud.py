"""GRU-D (Che et al., 2018), vectorised over time except for the hidden-state loop."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from medseq.models.config import ModelConfig
from medseq.models.grud_recurrence import grud_recurrence
from medseq.models.head import OutputHead, check_inputs, check_model_config
from medseq.models.init import init_recurrent_
from medseq.models.pooling import Pooling, valid_steps


class GRUD(nn.Module):
    r"""GRU-D: a GRU with trainable decay of inputs and hidden state towards defaults.

    Che, Purushotham, Cho, Sontag & Liu (2018), "Recurrent Neural Networks for Multivariate
    Time Series with Missing Values", Scientific Reports 8:6085. For each step ``t``, with
    mask ``m_t``, time since last observation ``delta_t`` and last observed value
    ``x^{last}_t``:

    .. math::
        \gamma_{x,t} &= \exp(-\max(0, w_{\gamma x} \odot \delta_t + b_{\gamma x}))
            \quad \text{(diagonal: one weight per feature)} \\
        \gamma_{h,t} &= \exp(-\max(0, W_{\gamma h} \delta_t + b_{\gamma h})) \\
        \hat x_t &= m_t \odot x_t + (1 - m_t) \odot
            (\gamma_{x,t} \odot x^{last}_t + (1 - \gamma_{x,t}) \odot \bar x) \\
        \tilde h_{t-1} &= \gamma_{h,t} \odot h_{t-1} \\
        h_t &= \mathrm{GRU}([\hat x_t ; m_t], \tilde h_{t-1})

    The GRU step is torch's :class:`~medseq.models.cells.GRUCell` convention (reset gate on
    ``W_hn h + b_hn``; ``z`` weighs the old state), which needs one ``(B, H) x (H, 3H)`` matmul
    per step. ``m_t`` (``input_mask``, default True as in the paper) and ``delta_t``
    (``input_delta``) are concatenated to the gate input.

    Inputs and reliance on the featurizer:

    * ``x^{last}`` is rebuilt here from ``values`` where ``mask == 1`` (a vectorised forward
      fill with ``cummax``), so the model does not depend on how the featurizer imputed
      unobserved steps; before a feature's first observation it is ``x_mean``.
    * ``x_mean`` (:math:`\bar x`) is a buffer of zeros: this relies on ``values`` being
      normalised with training statistics (``ICUFeaturizer``), where the training mean is 0.
    * ``delta`` is used as given (hours since the feature was last observed).

    Speed: ``gamma_x``, ``x_hat``, ``gamma_h`` and the input projection of all three gates
    (one ``(B*T, I) x (I, 3H)`` matmul) are computed for all steps at once; only the
    hidden-state recurrence loops over ``T``, with a hand-written backward
    (:mod:`medseq.models.grud_recurrence`).

    Parameters
    ----------
    config : ModelConfig
        ``kind="grud"`` (``cell="gru"``, ``num_layers=1``, ``bidirectional=False``). Pooling,
        static fusion and head are those of :class:`SequenceClassifier`.

    Inputs
    ------
    values, mask, delta : Tensor of shape (B, T, F), float32
    lengths : Tensor of shape (B,), int64, each in ``[1, T]``
    static : Tensor of shape (B, S) or None
    return_attention : bool, default=False

    Outputs
    -------
    logits : Tensor of shape (B, n_outputs)
    """

    x_mean: Tensor  # buffer, registered in __init__

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        check_model_config(config, "grud", "GRUD")
        self.config = config
        n_features, hidden = config.input_size, config.hidden_size
        gate_input = config.recurrent_input_size
        self.gamma_x_weight = nn.Parameter(torch.empty(n_features))
        self.gamma_x_bias = nn.Parameter(torch.empty(n_features))
        self.gamma_h = nn.Linear(n_features, hidden)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden, gate_input))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden))
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.pooling = Pooling(config.pooling, hidden, config.attention_size)
        self.head = OutputHead(
            hidden, config.static_size, config.static_hidden_size, config.dropout, config.n_outputs
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Decays ~ U(-1/sqrt(F), 1/sqrt(F)); GRU weights by ``config.init``."""
        bound = 1.0 / math.sqrt(self.config.input_size)
        nn.init.uniform_(self.gamma_x_weight, -bound, bound)
        nn.init.uniform_(self.gamma_x_bias, -bound, bound)
        bound = 1.0 / math.sqrt(self.config.hidden_size)
        for param in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            nn.init.uniform_(param, -bound, bound)
        if self.config.init == "orthogonal":
            init_recurrent_(self)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{c.input_size}, {c.hidden_size}, pooling={c.pooling!r}, "
            f"input_mask={c.input_mask}, input_delta={c.input_delta}"
        )

    def _impute(self, values: Tensor, mask: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
        """Time-major ``(T, B, F)`` inputs -> ``x_hat`` ``(T, B, F)``, ``gamma_h`` ``(T, B, H)``."""
        observed = mask > 0
        with torch.no_grad():  # 1 + index of the last observation so far, 0 before the first
            steps = torch.arange(1, values.shape[0] + 1, device=values.device).view(-1, 1, 1)
            last = torch.where(observed, steps, 0).cummax(dim=0).values  # (T, B, F)
        x_obs = torch.where(observed, values, self.x_mean)
        first = self.x_mean.expand(1, *values.shape[1:])
        x_last = torch.cat([first, x_obs], dim=0).gather(0, last)  # x_mean before the first
        # exp(-max(0, w d + b)) = exp(min(0, -w d - b)), with the sign folded into the params
        gamma_x = torch.addcmul(-self.gamma_x_bias, delta, -self.gamma_x_weight)
        gamma_x = gamma_x.clamp(max=0.0).exp()
        gamma_h = nn.functional.linear(delta, -self.gamma_h.weight, -self.gamma_h.bias)
        gamma_h = gamma_h.clamp(max=0.0).exp()
        fallback = torch.lerp(self.x_mean, x_last, gamma_x)  # g x_last + (1 - g) x_mean
        x_hat = torch.lerp(fallback, x_obs, mask)  # m x + (1 - m) fallback
        return x_hat, gamma_h

    def forward(
        self,
        values: Tensor,
        mask: Tensor,
        delta: Tensor,
        lengths: Tensor,
        static: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        c = self.config
        check_inputs("GRUD", values, mask, delta, lengths, static, (c.input_size, c.static_size))
        if return_attention and c.pooling != "attention":
            raise ValueError(f"return_attention=True needs pooling='attention', got {c.pooling!r}")
        # one pass to time-major (T, B, 3F), so every per-step slice is contiguous, and one to
        # zero the padding
        inputs = torch.cat([x.transpose(0, 1) for x in (values, mask, delta)], dim=2)
        valid = valid_steps(lengths, values.shape[1]).t().unsqueeze(2)  # (T, B, 1)
        inputs = inputs.masked_fill(~valid, 0.0)
        values, mask, delta = inputs.split(c.input_size, dim=2)
        x_hat, gamma_h = self._impute(values, mask, delta)  # (T, B, F), (T, B, H)
        parts = [x_hat] + [mask] * c.input_mask + [delta] * c.input_delta
        gi = nn.functional.linear(torch.cat(parts, dim=2), self.weight_ih, self.bias_ih)
        outputs = grud_recurrence(gi, gamma_h, self.weight_hh, self.bias_hh)  # (T, B, H)
        outputs = outputs.transpose(0, 1)  # (B, T, H)
        pooled, weights = self.pooling(outputs, lengths)
        logits = self.head(pooled, static)
        if return_attention:
            return logits, weights
        return logits
