"""Doctor AI (Choi et al., 2016): a GRU over multi-hot visit vectors predicting the next visit.

Choi E, Bahadori MT, Schuetz A, Stewart WF, Sun J. *Doctor AI: Predicting Clinical Events
via Recurrent Neural Networks.* MLHC 2016. Each visit's codes are embedded by one dense
layer with a ReLU, a GRU reads the visits in time order, and its state after the last
visit gives one logit per diagnosis group of the next visit (multi-label, sigmoid; the paper
used a softmax over codes, medseq scores each group independently so recall@k and per-group
AUROC come from the same output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from medseq.models.config_base import ModelConfigBase
from medseq.models.config_checks import check_dropout, check_int
from medseq.models.init import init_recurrent_
from medseq.models.pooling import gather_steps


@dataclass(frozen=True)
class DoctorAIConfig(ModelConfigBase):
    """Hyperparameters of :class:`DoctorAI`.

    Parameters
    ----------
    vocab_size : int
        Columns of the multi-hot visit vectors (from the fitted featurizer).
    kind : "doctorai"
    n_outputs : int, default=1
        One logit per target group (filled in by the runner from the task).
    embedding_size : int, default=64
    hidden_size : int, default=64
    num_layers : int, default=1
    dropout : float, default=0.3
        On the visit embeddings, between GRU layers and before the output layer.
    """

    KINDS: ClassVar[tuple[str, ...]] = ("doctorai",)

    vocab_size: int
    kind: str = "doctorai"
    n_outputs: int = 1
    embedding_size: int = 64
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.3

    def _check_fields(self) -> None:
        owner = type(self).__name__
        check_int(owner, "vocab_size", self.vocab_size, 2)
        for name in ("n_outputs", "embedding_size", "hidden_size", "num_layers"):
            check_int(owner, name, getattr(self, name), 1)
        object.__setattr__(self, "dropout", check_dropout(owner, self.dropout))


class DoctorAI(nn.Module):
    r"""GRU over visits; logits of the next visit's groups from the state after the last one.

    .. math::
        v_t &= \mathrm{ReLU}(W_{emb} x_t + b_{emb}) \\
        h_t &= \mathrm{GRU}(v_t, h_{t-1}) \\
        \text{logits} &= W h_{L} + b \in \mathbb{R}^{K}

    Inputs
    ------
    visits : Tensor of shape (B, T, C), float, multi-hot, zero after ``lengths``
    lengths : Tensor of shape (B,), int64, in ``[1, T]``

    Outputs
    -------
    logits : Tensor of shape (B, n_outputs)
    """

    def __init__(self, config: DoctorAIConfig) -> None:
        super().__init__()
        if not isinstance(config, DoctorAIConfig):
            raise TypeError(f"DoctorAI needs a DoctorAIConfig, got {type(config).__name__}")
        self.config = c = config
        self.embedding = nn.Linear(c.vocab_size, c.embedding_size)
        self.dropout = nn.Dropout(c.dropout)
        inter = c.dropout if c.num_layers > 1 else 0.0
        self.rnn = nn.GRU(
            c.embedding_size, c.hidden_size, c.num_layers, batch_first=True, dropout=inter
        )
        self.out = nn.Linear(c.hidden_size, c.n_outputs)
        init_recurrent_(self)

    def forward(self, visits: Tensor, lengths: Tensor) -> Tensor:
        if visits.ndim != 3 or visits.shape[2] != self.config.vocab_size:
            raise ValueError(
                f"DoctorAI: visits must be (B, T, {self.config.vocab_size}), "
                f"got {tuple(visits.shape)}"
            )
        v = self.dropout(self.embedding(visits).relu())  # (B, T, E)
        h = self.rnn(v)[0]  # (B, T, H); step t has read visits <= t only
        last = gather_steps(h, lengths.to(h.device) - 1)  # (B, H)
        return self.out(self.dropout(last))
