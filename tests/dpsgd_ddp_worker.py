"""Worker for tests/test_dpsgd_ddp.py: DP-SGD TI under Lightning ``strategy=ddp`` on CPU (gloo).

Run as ``python tests/dpsgd_ddp_worker.py OUT WORLD``; Lightning re-launches this script
for the other ranks. Two fits, each saving every rank's trained row to ``OUT``:

* ``poisson``: real Poisson sampling and noise (z = 1): ranks must end identical;
* ``fixed``: zero noise, the same global batch every step, split over the ranks, and
  per-example draws that do not depend on the split: must equal the one-process run.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmark.config import ModelConfig, default_config  # noqa: E402
from benchmark.data.datasets import load_dataset  # noqa: E402
from benchmark.adapt.dpsgd import (  # noqa: E402
    Denoiser, DPSettings, DPSGDModule, LatentPromptDataset, _rank_and_world)
from benchmark.adapt.textual_inversion import PlaceholderEmbedding, TemplatePromptDataset  # noqa: E402
from benchmark.models.backbone import load_backbone  # noqa: E402
from tests.conftest import SMOKE, compose  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 3


class Indexed(Dataset):
    """(mu, sd, ids, index): the index lets the draws follow the example, not the rank."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return (*self.inner[i], i)


class FixedSplitModule(DPSGDModule):
    """Every step: the same global batch (all examples), rank r takes its contiguous share."""

    def setup(self, stage):
        super().setup(stage)
        rank, world = _rank_and_world()
        share = len(self.train_set) // world
        indices = list(range(rank * share, (rank + 1) * share))
        self.loader = DataLoader(torch.utils.data.Subset(self.train_set, indices * STEPS), batch_size=share)

    def draws(self, batch):
        mu, sd, _, index = batch
        parts = []
        for i in index.tolist():
            g = torch.Generator().manual_seed(int(hashlib.sha256(f"{i}/{self.steps_taken}".encode()).hexdigest()[:12], 16))
            parts.append((torch.randn(mu.shape[1:], generator=g), torch.randn(mu.shape[1:], generator=g),
                          torch.randint(0, 1000, (1,), generator=g)))
        latent_noise = torch.stack([p[0] for p in parts])
        noise = torch.stack([p[1] for p in parts])
        t = torch.cat([p[2] for p in parts])
        return self.noise_targets(mu, sd, latent_noise, noise, t)


def fit(kind: str, world: int, out: Path) -> None:
    run = compose(SMOKE)
    from benchmark.config import validate_config

    run = validate_config(run)
    backbone = load_backbone(default_config(ModelConfig, "model=micro"))
    data = load_dataset(run.dataset, 32)
    concept = data.config.concept
    ids, init = backbone.add_placeholder_tokens([concept.placeholder], concept.initializer_token)
    for p in list(backbone.text_encoder.parameters()) + list(backbone.unet.parameters()):
        p.requires_grad_(False)
    emb = PlaceholderEmbedding(backbone.text_encoder.get_input_embeddings(), ids, init.unsqueeze(0))
    backbone.text_encoder.set_input_embeddings(emb)
    inner = LatentPromptDataset(TemplatePromptDataset(backbone, data, ["a painting in the style of {}"],
                                                      [concept.placeholder], [0] * len(data.adapt), 0))
    n = len(inner)
    assert n == GLOBAL_BATCH
    if kind == "poisson":
        dp = DPSettings(noise_multiplier=1.0, max_grad_norm=0.01, sample_rate=0.125, mechanism_seed=11)  # empty local batches are likely
        module = DPSGDModule(Denoiser(backbone.text_encoder, backbone.unet), backbone.scheduler, inner,
                             batch_size=4, learning_rate=0.1, optimizer="sgd", dp=dp, seed=0, log_loss=False)
        steps = 4
    else:
        dp = DPSettings(noise_multiplier=0.0, max_grad_norm=0.01, sample_rate=1.0, mechanism_seed=11)
        module = FixedSplitModule(Denoiser(backbone.text_encoder, backbone.unet), backbone.scheduler, Indexed(inner),
                                  batch_size=GLOBAL_BATCH, learning_rate=0.1, optimizer="sgd", dp=dp, seed=0,
                                  log_loss=False)
        steps = STEPS
    trainer = L.Trainer(accelerator="cpu", devices=world, strategy="ddp" if world > 1 else "auto", max_steps=steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False,
                        default_root_dir=str(out / "lightning"))
    trainer.fit(module)
    rank = trainer.global_rank
    torch.save({"row": emb.learned.rows.detach().clone(), "init": init, "steps": module.steps_taken,
                "opacus_steps": module.opacus_steps(), "empty_steps": module.empty_steps, "world": trainer.world_size},
               out / f"{kind}_world{world}_rank{rank}.pt")


if __name__ == "__main__":
    out, world = Path(sys.argv[1]), int(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    kinds = sys.argv[3].split(",") if len(sys.argv) > 3 else ["poisson", "fixed"]
    for kind in kinds:
        fit(kind, world, out)
