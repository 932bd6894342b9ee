"""The training loop: fit a sequence model on feature dicts, with checkpoints and resume.

One :class:`Trainer` serves every model that follows the contract
``forward(values, mask, delta, lengths, static=None) -> logits (B, n_outputs)``.

Reproducibility: ``fit`` seeds python, numpy and torch with ``config.seed``; epoch ``e``
(0-based) shuffles with a ``torch.Generator`` seeded ``seed + e``; each checkpoint stores
the RNG states, and a resume restores them, so an interrupted and resumed run gives the
same weights and metrics as an uninterrupted one. On CPU with a fixed ``num_threads`` the
kernels used by recurrent models are deterministic; on CUDA, bit-identical runs also need
``torch.use_deterministic_algorithms(True)`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which
are process-wide switches left to the caller. Under ``torchrun`` the same ``fit`` trains with
DDP and gives the numbers of one process (:mod:`medseq.training.distributed`).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from medseq.models.fused_select import fused_gru_mode
from medseq.training import checkpoint as ckpt
from medseq.training import distributed
from medseq.training.batching import (
    forward_batches,
    iter_batches,
    model_input_names,
    n_samples,
    resolve_device,
    to_tensors,
)
from medseq.training.config import TrainConfig
from medseq.training.losses import build_loss
from medseq.training.monitor import (
    check_monitorable,
    is_improvement,
    output_transform,
    validation_scores,
)
from medseq.training.optim import (
    build_optimizer,
    build_scheduler,
    clip_gradients,
    current_lr,
    step_scheduler,
)
from medseq.training.regularization import regularization_penalty
from medseq.training.result import FitResult
from medseq.training.run_state import RunState
from medseq.training.tbptt import check_tbptt_model, tbptt_backward

logger = logging.getLogger(__name__)

#: ``augment(batch, generator) -> batch``: a training-only transform of each batch.
Augment = Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]]


class Trainer:
    """Fit and apply sequence models; hyperparameters come from a :class:`TrainConfig`.

    Backpropagation runs through the full padded sequence, or through ``tbptt_steps``
    recurrent steps with the state carried across chunks (truncated BPTT,
    :mod:`medseq.training.tbptt`). Each epoch: shuffle, train with the configured loss,
    penalties, clipping and optimizer, score the validation set, keep the best weights, step
    the schedule, write the checkpoint; stop after ``patience`` epochs without improvement.

    Examples
    --------
    A GRU learns whether feature 0 is positive on average over a stay:

    >>> from medseq.evaluation import binary_metrics
    >>> from medseq.models import ModelConfig, build_model
    >>> rng = np.random.default_rng(0)
    >>> def stays(n, t=8):  # fully observed, so mask and delta are ones
    ...     values = rng.normal(size=(n, t, 2)).astype(np.float32)
    ...     y = (values[:, :, 0].mean(axis=1) > 0).astype(np.float32)
    ...     ones = np.ones_like(values)
    ...     return dict(values=values, mask=ones, delta=ones, lengths=np.full(n, t), y=y)
    >>> train, val, test = stays(512), stays(128), stays(128)
    >>> _ = torch.manual_seed(0)  # the initial weights
    >>> model = build_model(ModelConfig(input_size=2, hidden_size=16))
    >>> config = TrainConfig(task="binary", epochs=10, lr=1e-2, monitor="auroc", progress=False)
    >>> trainer = Trainer(config)
    >>> result = trainer.fit(model, train, val)  # the model now holds the best epoch
    >>> risk = trainer.predict(model, test)  # P(y = 1), one per test stay
    >>> risk.shape, result.monitor, result.best_epoch is not None
    ((128,), 'val_auroc', True)
    >>> bool(binary_metrics(test["y"], risk)["auroc"] > 0.9)
    True
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer expects a TrainConfig, got {type(config).__name__}")
        self.config = config
        # ``extra_loss(model)`` is added to every training step's loss, e.g. FedProx's
        # proximal term in federated rounds (medseq.federated.local).
        self.extra_loss = extra_loss
        self._augment: Augment | None = None

    @property
    def _monitor_key(self) -> str:
        return f"val_{self.config.monitor}"

    @property
    def _checkpoint_dir(self) -> Path | None:
        cdir = self.config.checkpoint_dir
        return None if cdir is None else Path(cdir)

    def fit(
        self,
        model: nn.Module,
        train: dict[str, np.ndarray],
        val: dict[str, np.ndarray],
        *,
        resume: bool = False,
        augment: Augment | None = None,
    ) -> FitResult:
        """Train ``model`` in place and restore its best validation epoch.

        Parameters
        ----------
        model : nn.Module
            Follows the forward contract; it receives, by keyword, the inputs among
            ``values, mask, delta, lengths, static`` that its ``forward`` names.
        train, val : dict of str to ndarray
            Feature dicts (``values`` (N, T, F), ``mask``, ``delta``, ``lengths`` (N,),
            ``static`` (N, S)) plus ``y``: float32 (N,) or (N, K), NaN where unknown.
        resume : bool, default=False
            Continue from ``checkpoint_dir/last.pt`` if it exists (its config must match,
            except for ``checkpoint_dir``, ``device``, ``num_threads``, ``progress``).
        augment : callable, optional
            ``augment(batch, generator) -> batch``, applied to every training batch (never
            to validation), e.g. random crops of long recordings. It must draw its
            randomness from ``generator`` (seeded per epoch), so a resumed run stays equal
            to an uninterrupted one.

        Returns
        -------
        FitResult
        """
        run = self._prepare(model, train, val)
        self._augment = augment
        if resume:
            self._resume(run)
        elif self._checkpoint_dir is not None and (self._checkpoint_dir / ckpt.LAST_FILE).exists():
            logger.warning(
                "%s holds a checkpoint; starting over (fit(resume=True) continues it)",
                self._checkpoint_dir,
            )
        self._log_start(run)
        with fused_gru_mode(self.config.fused_gru):
            self._loop(run)
        return self._finish(run)

    def predict(self, model: nn.Module, data: dict[str, np.ndarray]) -> np.ndarray:
        """Batched predictions without gradients, in eval mode, on the model's device.

        Returns sigmoid probabilities for ``"binary"`` (N,) and ``"multilabel"`` (N, K),
        softmax probabilities (N, K) for ``"multiclass"``, raw outputs for
        ``"regression"`` ((N,) for one output). ``y`` in ``data`` is ignored.
        """
        names = model_input_names(model, data)
        tensors = to_tensors(data, names, where="data")
        output = output_transform(
            self.config.task, forward_batches(model, tensors, names, self.config.batch_size)
        )
        if self.config.task in ("binary", "regression") and output.shape[1:] == (1,):
            output = output[:, 0]
        return output.numpy()

    # ---------------------------------------------------------------- set-up

    def _prepare(self, model: nn.Module, train: dict, val: dict) -> RunState:
        cfg = self.config
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        ckpt.seed_everything(cfg.seed)
        dist_ctx = distributed.current()
        if dist_ctx is None:
            device = resolve_device(cfg.device)
        else:
            device = distributed.device_for(cfg.device, dist_ctx)
        names = model_input_names(model, train)
        train_t = to_tensors(train, names, task=cfg.task, where="train")
        val_t = to_tensors(val, names, task=cfg.task, where="val")
        check_monitorable(cfg.task, cfg.monitor, val_t["y"].numpy())
        if cfg.tbptt_steps is not None:
            if ckpt.unwrap_model(model) is not model or dist_ctx is not None:
                raise ValueError("tbptt_steps does not support wrapped (DDP/compiled) models yet")
            check_tbptt_model(model)
        model.to(device)
        optimizer = build_optimizer(cfg, model)
        if dist_ctx is not None:
            distributed.init(device)
        return RunState(
            model=model if dist_ctx is None else distributed.wrap(model, device),
            optimizer=optimizer,
            scheduler=build_scheduler(cfg, optimizer),
            loss_fn=build_loss(cfg, train_t["y"].numpy()).to(device),
            train=train_t,
            val=val_t,
            inputs=names,
            device=device,
            module=model,
            dist=dist_ctx,
        )

    def _resume(self, run: RunState) -> None:
        if self._checkpoint_dir is None:
            raise ValueError("fit(resume=True) needs TrainConfig.checkpoint_dir")
        path = self._checkpoint_dir / ckpt.LAST_FILE
        if not path.exists():
            logger.info("no checkpoint at %s; starting from epoch 1", path)
            return
        state = ckpt.load_checkpoint(path)
        changed = self.config.changes_from(state.config_json)
        if changed:
            raise ValueError(
                f"{path} was written with a different TrainConfig ({changed}); resume with "
                "the same config, or start over with resume=False"
            )
        run.restore(state)
        logger.info("resumed from %s after epoch %d of %d", path, run.epoch, self.config.epochs)

    def _log_start(self, run: RunState) -> None:
        n_params = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
        logger.info("Trainer.fit hyperparameters: %s", self.config.to_json())
        logger.info(
            "model %s (%d trainable parameters) on %s, inputs %s, loss %s; "
            "%d train and %d validation samples",
            type(ckpt.unwrap_model(run.model)).__name__,
            n_params,
            run.device,
            list(run.inputs),
            self.config.loss_name,
            n_samples(run.train),
            n_samples(run.val),
        )

    # ---------------------------------------------------------------- the loop

    def _show_progress(self) -> bool:
        return self.config.progress and sys.stderr.isatty() and distributed.is_main_process()

    def _loop(self, run: RunState) -> None:
        cfg = self.config
        bar = tqdm(
            total=cfg.epochs,
            initial=run.epoch,
            desc="epochs",
            unit="epoch",
            disable=not self._show_progress(),
            dynamic_ncols=True,
        )
        with bar:
            while run.epoch < cfg.epochs and not run.stopped_early:
                record = self._run_epoch(run)
                run.history.append(record)
                self._update_best(run, record)
                step_scheduler(run.scheduler, record[self._monitor_key])
                run.epoch += 1
                run.stopped_early = self._patience_exhausted(run)
                self._save(run)
                bar.update(1)
                keys = ("train_loss", "val_loss", self._monitor_key)
                bar.set_postfix({k: f"{record[k]:.4g}" for k in keys})
                scores = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch")
                logger.info("epoch %d/%d: %s", run.epoch, cfg.epochs, scores)

    def _run_epoch(self, run: RunState) -> dict[str, float]:
        start = time.perf_counter()
        lr = current_lr(run.optimizer)
        train_loss = self._train_epoch(run)
        val_loss, scores = self._evaluate(run)
        return {
            "epoch": run.epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            **{f"val_{k}": v for k, v in scores.items()},
            "lr": lr,
            "seconds": time.perf_counter() - start,
        }

    def _train_epoch(self, run: RunState) -> float:
        cfg = self.config
        run.model.train()
        generator = torch.Generator().manual_seed(cfg.seed + run.epoch)
        n_batches = math.ceil(n_samples(run.train) / cfg.batch_size)
        if run.dist is not None:
            distributed.reseed(cfg.seed, run.epoch, run.dist.rank)
        count: float
        total, count = 0.0, 0
        bar = tqdm(
            total=n_batches,
            desc=f"epoch {run.epoch + 1}",
            unit="batch",
            leave=False,
            disable=not self._show_progress(),
            dynamic_ncols=True,
        )
        with bar:
            for i, (batch, share, size) in enumerate(self._batches(run, generator)):
                loss = self._train_step(run, batch, i, share)
                total, count = total + loss * share * size, count + share * size
                bar.update(1)
                bar.set_postfix(loss=total / max(count, 1e-12))
        if run.dist is not None:
            total, count = distributed.all_reduce_sum([total, count], run.device)
        return total / count

    def _batches(
        self, run: RunState, generator: torch.Generator
    ) -> Iterator[tuple[dict[str, torch.Tensor], float, int]]:
        """(batch, share of the global batch's loss, global batch size) per step."""
        size = self.config.batch_size
        augment = self._augment
        if run.dist is not None:
            for batch, share, total in distributed.shard_batches(
                run.train, size, run.device, generator, run.dist, run.loss_fn
            ):
                yield (batch if augment is None else augment(batch, generator)), share, total
            return
        for batch in iter_batches(run.train, size, run.device, generator):
            if augment is not None:
                batch = augment(batch, generator)
            yield batch, 1.0, batch["y"].shape[0]

    def _train_step(
        self, run: RunState, batch: dict[str, torch.Tensor], index: int, share: float = 1.0
    ) -> float:
        cfg = self.config
        run.optimizer.zero_grad(set_to_none=True)
        penalty = regularization_penalty(ckpt.unwrap_model(run.model), cfg.l1, cfg.l2)
        if self.extra_loss is not None:
            extra = self.extra_loss(ckpt.unwrap_model(run.model))
            penalty = extra if penalty is None else penalty + extra
        if cfg.tbptt_steps is None:
            output = run.model(**{k: batch[k] for k in run.inputs})
            loss = run.loss_fn(output, batch["y"])
            self._check_finite(loss, run, index)
            scaled = loss if run.dist is None else loss * (share * run.dist.world_size)
            (scaled if penalty is None else scaled + penalty).backward()
        else:
            values, lengths, y = batch["values"], batch["lengths"], batch["y"]
            loss = tbptt_backward(
                run.model, values, lengths, y, run.loss_fn, cfg.tbptt_steps, batch.get("static")
            )
            self._check_finite(loss, run, index)
            if penalty is not None:
                penalty.backward()
        clip_gradients(run.model, cfg)
        run.optimizer.step()
        return float(loss.item())

    @staticmethod
    def _check_finite(loss: torch.Tensor, run: RunState, index: int) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"epoch {run.epoch + 1}, batch {index + 1}: training loss is {loss.item()}; "
                "lower lr, set clip_grad_norm, or check the inputs for extreme values"
            )

    def _evaluate(self, run: RunState) -> tuple[float, dict[str, float]]:
        output = forward_batches(run.module, run.val, run.inputs, self.config.batch_size)
        y = run.val["y"]
        with torch.no_grad():
            loss = float(run.loss_fn(output.to(run.device), y.to(run.device)).item())
        pred = output_transform(self.config.task, output)
        if pred.ndim == 2 and y.ndim == 1 and self.config.task != "multiclass":
            pred = pred[:, 0]
        return loss, validation_scores(self.config.task, y.numpy(), pred.numpy())

    def _update_best(self, run: RunState, record: dict[str, float]) -> None:
        cfg = self.config
        score = record[self._monitor_key]
        if not is_improvement(score, run.best_score, cfg.monitor_mode, cfg.min_delta):
            return
        run.best_score, run.best_epoch = float(score), int(record["epoch"])
        run.best_model = ckpt.model_state(run.model)
        if self._checkpoint_dir is not None and run.writes_files:
            ckpt.save_weights(self._checkpoint_dir / ckpt.BEST_FILE, run.best_model)

    def _patience_exhausted(self, run: RunState) -> bool:
        patience = self.config.patience
        if patience is None or run.epoch >= self.config.epochs:
            return False
        return run.epoch - (run.best_epoch or 0) >= patience

    def _save(self, run: RunState) -> None:
        if self._checkpoint_dir is None or not run.writes_files:
            return
        state = run.to_checkpoint(self.config.to_json())
        ckpt.save_checkpoint(self._checkpoint_dir / ckpt.LAST_FILE, state)

    def _finish(self, run: RunState) -> FitResult:
        if not self.config.restore_best:
            logger.info("restore_best = false: keeping the weights of epoch %d", run.epoch)
        elif run.best_model is not None:
            ckpt.unwrap_model(run.model).load_state_dict(run.best_model)
            logger.info(
                "restored epoch %d: %s=%.4f", run.best_epoch, self._monitor_key, run.best_score
            )
        else:
            logger.warning("no epoch gave a finite %s; keeping the last weights", self._monitor_key)
        return FitResult(
            history=[dict(r) for r in run.history],
            best_epoch=run.best_epoch,
            best_score=run.best_score,
            monitor=self._monitor_key,
            stopped_early=run.stopped_early,
            checkpoint_dir=self.config.checkpoint_dir,
        )
