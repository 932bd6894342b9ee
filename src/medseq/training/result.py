"""The outcome of :meth:`medseq.training.Trainer.fit`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FitResult:
    """What a fit produced. The model passed to ``fit`` now holds the best epoch's weights.

    Attributes
    ----------
    history : list of dict
        Per epoch: ``epoch`` (1-based), ``train_loss``, ``val_loss``, ``val_<score>``
        (auroc/auprc, accuracy, or mse/mae by task), ``lr`` and ``seconds``.
        ``train_loss`` is the data loss without the L1/L2 penalties.
    best_epoch : int or None
        1-based epoch whose weights were restored; None if no epoch gave a finite score.
    best_score : float or None
        Value of ``monitor`` at ``best_epoch``.
    monitor : str
        History key that was monitored, e.g. ``"val_auroc"``.
    stopped_early : bool
        True when ``patience`` ended the fit before ``epochs``.
    checkpoint_dir : str or None
    """

    history: list[dict[str, float]]
    best_epoch: int | None
    best_score: float | None
    monitor: str
    stopped_early: bool
    checkpoint_dir: str | None = None

    @property
    def best_metrics(self) -> dict[str, float]:
        """The history record of ``best_epoch`` (empty if there is none)."""
        return dict(self.history[self.best_epoch - 1]) if self.best_epoch else {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)
