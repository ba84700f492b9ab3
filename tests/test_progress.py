"""The training bar counts optimiser steps up to max_steps, across many short epochs."""

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmark.config import StrategyConfig, default_config
from benchmark.lightning.factories import make_trainer_factory
from benchmark.lightning.progress import StepProgressBar


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_step_bar_spans_max_steps_over_epochs_of_two_batches(tmp_path):
    trainer = make_trainer_factory(default_config(StrategyConfig), None, tmp_path)(max_steps=7)
    bars = [c for c in trainer.callbacks if isinstance(c, StepProgressBar)]
    assert len(bars) == 1
    trainer.fit(_Tiny(), DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))  # 2 batches an epoch
    assert trainer.current_epoch >= 3
    assert (bars[0].train_progress_bar.n, bars[0].train_progress_bar.total) == (7, 7)


def test_no_bar_when_bars_are_off(tmp_path):
    trainer = make_trainer_factory(default_config(StrategyConfig), None, tmp_path)(max_steps=2, enable_progress_bar=False)
    assert not any(isinstance(c, StepProgressBar) for c in trainer.callbacks)


def test_each_step_is_drawn_once_in_a_log(tmp_path, capfd):
    trainer = make_trainer_factory(default_config(StrategyConfig), None, tmp_path)(max_steps=7)
    trainer.fit(_Tiny(), DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
    out = capfd.readouterr()
    log = out.out + out.err
    assert all(log.count(f"| {k}/7 [") == 1 for k in range(1, 7)), log  # 7/7 is drawn again on close
