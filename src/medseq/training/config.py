"""Training hyperparameters as one frozen, JSON round-tripping dataclass.

Every field is checked when the config is built, so a typo or an out-of-range value fails
before any data is read, with a message naming the field, the bound and the value given.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from medseq.schema import check_known_keys

TASKS = ("binary", "multilabel", "multiclass", "regression")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULERS = ("none", "cosine", "step", "plateau")
LOSSES = ("auto", "bce", "focal", "cross_entropy", "mse")
DEVICES = ("cpu", "cuda", "auto")
CLASS_WEIGHTS = ("balanced", "sqrt_balanced")
FUSED_GRU_MODES = ("off", "auto", "on")  # medseq.models.fused_select.MODES
MONITORS = ("loss", "auroc", "auprc", "mse", "mae", "accuracy", "macro_f1", "balanced_accuracy")
#: Monitors where higher is better.
MAXIMISED = ("auroc", "auprc", "accuracy", "macro_f1", "balanced_accuracy")

# The loss used when ``loss="auto"`` and the losses each task accepts.
DEFAULT_LOSS = {
    "binary": "bce",
    "multilabel": "bce",
    "multiclass": "cross_entropy",
    "regression": "mse",
}
TASK_LOSSES = {
    "binary": ("bce", "focal"),
    "multilabel": ("bce", "focal"),
    "multiclass": ("cross_entropy",),
    "regression": ("mse",),
}
TASK_MONITORS = {
    "binary": ("loss", "auroc", "auprc"),
    "multilabel": ("loss", "auroc", "auprc"),
    "multiclass": ("loss", "accuracy", "macro_f1", "balanced_accuracy"),
    "regression": ("loss", "mse", "mae"),
}
# Fields that may differ between the run that wrote a checkpoint and the run resuming it:
# they change where or how fast the work happens, never the numbers it produces.
RESUMABLE_CHANGES = ("checkpoint_dir", "device", "num_threads", "progress")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :class:`medseq.training.Trainer`.

    Parameters
    ----------
    task : {"binary", "multilabel", "multiclass", "regression"}, default="binary"
        Decides the default loss, the validation metrics and the output transform of
        ``predict`` (sigmoid, sigmoid, softmax, identity).
    epochs : int, default=30
        Maximum number of passes over the training set.
    batch_size : int, default=64
        Samples per optimizer step (and per forward pass in ``predict``).
    optimizer : {"adam", "adamw", "rmsprop", "sgd"}, default="adam"
    lr : float, default=1e-3
        Initial learning rate.
    weight_decay : float, default=0.0
        The optimizer's own weight decay (coupled L2 for Adam/RMSprop/SGD, decoupled for
        AdamW). Kept apart from ``l2`` so a config says exactly which one it means.
    momentum : float, default=0.9
        Momentum of SGD and RMSprop; ignored by Adam/AdamW.
    scheduler : {"none", "cosine", "step", "plateau"}, default="none"
        Learning-rate schedule, stepped once per epoch. ``"plateau"`` watches ``monitor``.
    lr_step_epochs : int, default=10
        Epochs between decays for ``scheduler="step"``.
    lr_gamma : float, default=0.1
        Decay factor for ``"step"`` and ``"plateau"``.
    lr_plateau_patience : int, default=2
        Epochs without improvement before ``"plateau"`` decays the learning rate.
    min_lr : float, default=0.0
        Floor of ``"cosine"`` and ``"plateau"``.
    loss : {"auto", "bce", "focal", "cross_entropy", "mse"}, default="auto"
        ``"auto"`` picks BCE for binary/multilabel, cross-entropy for multiclass and MSE
        for regression. Labels that are NaN are left out of every loss.
    pos_weight : "balanced", float or None, default=None
        Weight of positive examples in BCE; ``"balanced"`` uses n_negative / n_positive of
        the training labels, per label column.
    class_weight : {"balanced", "sqrt_balanced"} or None, default=None
        Class weights of the multiclass cross-entropy: scikit-learn's "balanced" rule, or
        its square root, which still lifts rare classes but weights a class 100 times
        rarer 10 times instead of 100 times, so it costs the common classes' precision less.
    focal_gamma : float, default=2.0
        Focusing parameter of the focal loss (Lin et al. 2017 use 2).
    focal_alpha : float or None, default=0.25
        Weight of the positive class in the focal loss (Lin et al. 2017 use 0.25).
    l1, l2 : float, default=0.0
        Explicit penalties ``l1 * sum|w|`` and ``l2 * sum w**2`` over weight matrices,
        added to the loss (biases are not penalised).
    clip_grad_norm : float or None, default=None
        Rescale gradients so their global L2 norm is at most this value.
    clip_grad_value : float or None, default=None
        Clamp each gradient element to ``[-value, value]`` (applied before the norm clip).
    monitor : {"loss", "auroc", "auprc", "mse", "mae", "accuracy", "macro_f1", \
"balanced_accuracy"}, default="loss"
        Validation metric for early stopping, best-weight selection and ``"plateau"``;
        maximised for AUROC/AUPRC and the multiclass scores, minimised otherwise. With
        class-weighted cross-entropy the validation loss tends to bottom out in the first
        epochs; ``macro_f1`` or ``balanced_accuracy`` watch what a multiclass task reports.
    patience : int or None, default=5
        Stop after this many epochs without improvement of ``monitor``; None never stops.
    min_delta : float, default=0.0
        Smallest change of ``monitor`` that counts as an improvement.
    restore_best : bool, default=True
        End with the weights of the best validation epoch. ``False`` keeps the last epoch's:
        a refit on all the data for a number of epochs chosen beforehand (by
        cross-validation), where the validation part only reports progress.
    seed : int, default=0
        Seeds python, numpy and torch at fit start; epoch ``e`` shuffles with a generator
        seeded ``seed + e``, so a resumed run visits batches in the same order.
    checkpoint_dir : str or None, default=None
        Where ``last.pt`` and ``best.safetensors`` are written after every epoch.
    device : {"cpu", "cuda", "auto"}, default="auto"
        ``"auto"`` uses CUDA when available.
    num_threads : int or None, default=None
        Passed to ``torch.set_num_threads`` at fit start (a process-wide setting).
    progress : bool, default=True
        Show a tqdm bar; it is hidden anyway when stderr is not a terminal.

    tbptt_steps : int or None, default=None
        Truncated BPTT (``medseq.training.tbptt``): the recurrence still runs over the whole
        sequence with its state carried from chunk to chunk, but the gradient flows back
        through ``tbptt_steps`` recurrent steps only: the last ones for a recording label,
        each chunk's own for per-step labels (multiclass ``y`` of shape (N, T'), NaN where
        none). Needs a unidirectional model that carries state across chunks (``ConvRNN``)
        and unpadded batches. ``None`` backpropagates through the whole (padded) sequence.
    fused_gru : {"off", "auto", "on"} or None, default=None
        The fused GRU training path (:mod:`medseq.models.fused_select`) during ``fit``:
        ``"auto"`` uses it for CPU training steps at hidden size <= 256, where it was
        measured faster than ``nn.GRU`` (``benchmarks/results/fused_gru.md``); ``"on"``
        wherever a gradient is needed; ``"off"`` never. ``None`` follows the
        environment variable ``MEDSEQ_FUSED_GRU``, itself ``"auto"`` when unset. Same
        parameters and maths; weights equal ``nn.GRU``'s to float32 rounding, not to the byte.
    """

    task: str = "binary"
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "none"
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    lr_plateau_patience: int = 2
    min_lr: float = 0.0
    loss: str = "auto"
    pos_weight: str | float | None = None
    class_weight: str | None = None  # None, "balanced", "sqrt_balanced"
    focal_gamma: float = 2.0
    focal_alpha: float | None = 0.25
    l1: float = 0.0
    l2: float = 0.0
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    monitor: str = "loss"
    patience: int | None = 5
    min_delta: float = 0.0
    restore_best: bool = True
    seed: int = 0
    checkpoint_dir: str | None = None
    device: str = "auto"
    num_threads: int | None = None
    progress: bool = True
    tbptt_steps: int | None = None
    fused_gru: str | None = None

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_numbers(self)
        _check_optional(self)
        _check_combinations(self)

    @property
    def loss_name(self) -> str:
        """The loss actually used: ``loss`` with ``"auto"`` resolved from ``task``."""
        return DEFAULT_LOSS[self.task] if self.loss == "auto" else self.loss

    @property
    def monitor_mode(self) -> Literal["min", "max"]:
        """``"max"`` for AUROC/AUPRC and multiclass scores, ``"min"`` for losses and errors."""
        return "max" if self.monitor in MAXIMISED else "min"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. a TOML ``[train]`` section); unknown keys are errors."""
        check_known_keys("TrainConfig", raw, {f.name for f in fields(cls)})
        return cls(**raw)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), as stored in checkpoints."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def changes_from(self, saved_json: str) -> str:
        """Fields that differ from a saved config and would change the numbers of a resume.

        Returns ``"name: saved -> current, ..."``, or ``""`` when resuming is safe; the
        fields in :data:`RESUMABLE_CHANGES` may differ.
        """
        saved, current = json.loads(saved_json), self.to_dict()
        changed = [
            f"{k}: {saved.get(k)!r} -> {current.get(k)!r}"
            for k in sorted(set(saved) | set(current))
            if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)
        ]
        return ", ".join(changed)


def _fail(name: str, expected: str, value: Any) -> None:
    raise ValueError(f"TrainConfig.{name} must be {expected}, got {value!r}")


def _check_choices(cfg: TrainConfig) -> None:
    for name, choices in (
        ("task", TASKS),
        ("optimizer", OPTIMIZERS),
        ("scheduler", SCHEDULERS),
        ("loss", LOSSES),
        ("device", DEVICES),
        ("monitor", MONITORS),
    ):
        value = getattr(cfg, name)
        if value not in choices:
            _fail(name, f"one of {choices}", value)
    for name in ("progress", "restore_best"):
        if not isinstance(getattr(cfg, name), bool):
            _fail(name, "a bool", getattr(cfg, name))


def _as_int(cfg: TrainConfig, name: str, low: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, f"an int >= {low}", value)
    if value < low:
        _fail(name, f">= {low}", value)


def _as_float(cfg: TrainConfig, name: str, low: float, high: float, *, open_low: bool) -> None:
    value = getattr(cfg, name)
    bounds = f"{'(' if open_low else '['}{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(name, f"a number in {bounds}", value)
    value = float(value)
    too_low = value <= low if open_low else value < low
    if math.isnan(value) or too_low or value > high:
        _fail(name, f"in {bounds}", value)
    object.__setattr__(cfg, name, value)  # ints from TOML/JSON become floats


def _check_numbers(cfg: TrainConfig) -> None:
    for name in ("epochs", "batch_size", "lr_step_epochs"):
        _as_int(cfg, name, 1)
    _as_int(cfg, "lr_plateau_patience", 0)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        _fail("seed", "an int >= 0", cfg.seed)
    inf = math.inf
    _as_float(cfg, "lr", 0.0, inf, open_low=True)
    _as_float(cfg, "lr_gamma", 0.0, 1.0, open_low=True)
    _as_float(cfg, "momentum", 0.0, 1.0, open_low=False)
    for name in ("weight_decay", "min_lr", "l1", "l2", "min_delta", "focal_gamma"):
        _as_float(cfg, name, 0.0, inf, open_low=False)


def _check_optional(cfg: TrainConfig) -> None:
    inf = math.inf
    for name in ("clip_grad_norm", "clip_grad_value"):
        if getattr(cfg, name) is not None:
            _as_float(cfg, name, 0.0, inf, open_low=True)
    if cfg.focal_alpha is not None:
        _as_float(cfg, "focal_alpha", 0.0, 1.0, open_low=False)
    if cfg.patience is not None:
        _as_int(cfg, "patience", 1)
    if cfg.num_threads is not None:
        _as_int(cfg, "num_threads", 1)
    if cfg.tbptt_steps is not None:
        _as_int(cfg, "tbptt_steps", 1)
    if cfg.checkpoint_dir is not None and not isinstance(cfg.checkpoint_dir, str):
        _fail("checkpoint_dir", "a str path or None", cfg.checkpoint_dir)
    if isinstance(cfg.pos_weight, str):
        if cfg.pos_weight != "balanced":
            _fail("pos_weight", '"balanced", a number > 0 or None', cfg.pos_weight)
    elif cfg.pos_weight is not None:
        _as_float(cfg, "pos_weight", 0.0, inf, open_low=True)
    if cfg.fused_gru not in (None, *FUSED_GRU_MODES):
        _fail("fused_gru", f"one of {FUSED_GRU_MODES} or None", cfg.fused_gru)
    if cfg.class_weight not in (None, *CLASS_WEIGHTS):
        _fail("class_weight", f"one of {CLASS_WEIGHTS} or None", cfg.class_weight)


def _check_combinations(cfg: TrainConfig) -> None:
    loss = cfg.loss_name
    if loss not in TASK_LOSSES[cfg.task]:
        _fail("loss", f"one of {TASK_LOSSES[cfg.task]} for task={cfg.task!r}", cfg.loss)
    if cfg.monitor not in TASK_MONITORS[cfg.task]:
        _fail("monitor", f"one of {TASK_MONITORS[cfg.task]} for task={cfg.task!r}", cfg.monitor)
    if cfg.pos_weight is not None and loss != "bce":
        hint = "; the focal loss weights classes with focal_alpha" if loss == "focal" else ""
        _fail("pos_weight", f"None with loss={loss!r}{hint}", cfg.pos_weight)
    if cfg.class_weight is not None and loss != "cross_entropy":
        _fail("class_weight", f"None with loss={loss!r} (it is for multiclass)", cfg.class_weight)
