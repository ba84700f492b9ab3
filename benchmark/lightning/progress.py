"""A training progress bar that counts optimiser steps, not batches of the current epoch."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import _update_n


class StepProgressBar(TQDMProgressBar):
    """One bar from 0 to ``max_steps`` for runs bounded by steps.

    Textual inversion trains for hundreds of steps over a few dozen images, so Lightning's
    per-epoch bar restarts every few batches ("Epoch 199: 4/4") and never says how far
    the run is. Runs bounded by epochs (``max_steps=-1``) keep the per-epoch bar.
    """

    def _by_steps(self, trainer) -> bool:
        return trainer.max_steps is not None and trainer.max_steps > 0

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        if self._by_steps(trainer):
            self.train_progress_bar.reset(total=trainer.max_steps)
            self.train_progress_bar.set_description("steps")

    def on_train_epoch_start(self, trainer, *args: Any) -> None:
        if not self._by_steps(trainer):
            super().on_train_epoch_start(trainer, *args)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self._by_steps(trainer):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            # Postfix first without drawing: one line per update in a log, not two (Lightning
            # draws the count, then the postfix, so a non-terminal log says each step twice).
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            _update_n(bar, trainer.global_step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._by_steps(trainer):
            super().on_train_epoch_end(trainer, pl_module)
