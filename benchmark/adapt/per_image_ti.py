"""Per-image textual inversion (DPAgg-TI step 1, METHODS.md): one row per private image, all in one run.

**Batched per-image TI equals independent runs.** All ``n`` rows train in one Lightning
run: every optimiser step sees every image exactly ``batch_size`` times (its own draws),
the loss is the sum over images of each image's mean loss, and the optimiser is AdamW
with ``weight_decay=0`` (element-wise). So row ``i``'s gradient, and its update, are
those of a run on image ``i`` alone. The random draws (template, latent sample, noise,
timestep) of image ``i`` at step ``s`` come from a generator seeded by
``(seed, i, s)`` only, so a run on image ``i`` alone makes the same draws. What remains
is floating-point rounding of batched versus single kernels.

The rows are private and noiseless: nothing computed from them or from their training
(no loss) is logged; :func:`train_per_image_embeddings` returns them to the caller only
and leaves the backbone's text encoder without them.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset

from benchmark.adapt.textual_inversion import TextualInversionModule, fill_template
from benchmark.lightning import distributed
from benchmark.models.backbone import Backbone
from benchmark.privacy.randomness import stream_seed

# The optimiser of TextualInversionModule; part of DPAgg-TI's cache key.
OPTIMIZER = "AdamW(betas=(0.9, 0.999), eps=1e-08, weight_decay=0)"


def per_image_token(image: int) -> str:
    return f"<S*_{image}>"


class PerImageStepDataset(Dataset):
    """Item ``s`` is the whole batch of optimiser step ``s``: ``draws`` examples of every image.

    Examples are image-major. Image ``j``'s template, latent-sampling noise, diffusion
    noise and timestep at step ``s`` come from a generator seeded by
    ``(seed, image_ids[j], s)``, so they do not depend on which other images share the
    run, nor on the order in which steps are fetched.
    """

    def __init__(self, mu: torch.Tensor, sd: torch.Tensor, prompt_ids: torch.Tensor, image_ids: list[int],
                 steps: int, draws: int, seed: int, num_timesteps: int):
        self.mu, self.sd, self.prompt_ids = mu, sd, prompt_ids  # prompt_ids: images x templates x length
        self.image_ids, self.steps, self.draws, self.seed = list(image_ids), steps, draws, seed
        self.num_timesteps = num_timesteps

    def __len__(self) -> int:
        return self.steps

    def draw(self, j: int, step: int) -> dict:
        gen = torch.Generator().manual_seed(stream_seed("dpagg-ti", self.seed, self.image_ids[j], step))
        shape = (self.draws, *self.mu.shape[1:])
        template = torch.randint(0, self.prompt_ids.shape[1], (self.draws,), generator=gen)
        return {
            "input_ids": self.prompt_ids[j, template],
            "latent_noise": torch.randn(shape, generator=gen),
            "noise": torch.randn(shape, generator=gen),
            "timesteps": torch.randint(0, self.num_timesteps, (self.draws,), generator=gen),
        }

    def __getitem__(self, step: int) -> dict:
        parts = [self.draw(j, step) for j in range(len(self.image_ids))]
        batch = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
        batch["mu"] = self.mu.repeat_interleave(self.draws, dim=0)
        batch["sd"] = self.sd.repeat_interleave(self.draws, dim=0)
        return batch


class PerImageTIModule(TextualInversionModule):
    """Trains one row per image; a step sums each image's mean loss over its own draws.

    Manual optimisation so that a step may run in chunks of ``chunk_images`` images
    (gradients accumulate; memory stays bounded) while still taking one optimiser step
    per step, with every row updated exactly once.
    """

    def __init__(self, backbone: Backbone, placeholder_ids: list[int], init_rows: torch.Tensor,
                 learning_rate: float, draws: int, chunk_images: Optional[int] = None):
        super().__init__(backbone, placeholder_ids, init_rows, learning_rate, seed=0)  # draws come in the batch
        self.automatic_optimization = False
        self.draws = draws
        self.chunk_images = chunk_images

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        optimizer.zero_grad()
        size = len(batch["mu"])
        chunk = (self.chunk_images or size) * self.draws
        for start in range(0, size, chunk):
            part = {key: value[start:start + chunk] for key, value in batch.items()}
            # Sum over images (not mean): row i's gradient is exactly that of image i's own loss.
            loss = self.denoising_loss(part).view(-1, self.draws).mean(dim=1).sum()
            self.manual_backward(loss)
        optimizer.step()
        # Nothing is logged: the losses are computed from private images without DP.


def train_per_image_embeddings(backbone: Backbone, mu: torch.Tensor, sd: torch.Tensor, captions: list[str],
                               image_ids: list[int], templates: list[str], init_row: torch.Tensor, *, steps: int,
                               learning_rate: float, batch_size: int, seed: int, make_trainer,
                               chunk_images: Optional[int] = None, devices=1) -> torch.Tensor:
    """Per-image TI: one row per image (``len(image_ids) x D``), all trained in one run.

    ``mu``/``sd`` are the images' latent means and stds, ``image_ids`` their indices in
    the private set (they name the tokens ``<S*_i>`` and seed the draws). Each step
    updates every row once with ``batch_size`` draws of its own image; calling this with
    a single image gives the same row as the batched run (see the module docstring).
    The backbone's text encoder is left with a plain embedding table, without the
    learned rows.
    """
    tokens = [per_image_token(i) for i in image_ids]
    vocab = backbone.tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:  # repeated calls (independent runs, benchmarks) reuse the tokens
        backbone.tokenizer.add_tokens(missing)
        backbone.text_encoder.resize_token_embeddings(len(backbone.tokenizer), mean_resizing=False)
    ids = backbone.tokenizer.convert_tokens_to_ids(tokens)
    prompts = [fill_template(t, caption, token) for caption, token in zip(captions, tokens) for t in templates]
    prompt_ids = backbone.tokenize(prompts).view(len(tokens), len(templates), -1)
    dataset = PerImageStepDataset(mu, sd, prompt_ids, image_ids, steps, batch_size, seed,
                                  backbone.scheduler.config.num_train_timesteps)
    # batch_size=None: item s already is step s's batch; steps are fetched in order.
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=0)
    init_rows = init_row.detach().float().unsqueeze(0).repeat(len(tokens), 1)
    module = PerImageTIModule(backbone, ids, init_rows, learning_rate, batch_size, chunk_images)
    # One device: the batch is the set of images (under DDP, this rank's shard of them;
    # ``devices`` is then this rank's GPU). No logger: nothing computed from the private
    # images without DP is logged (the step bar shows no loss). One bar: rank 0's.
    trainer = make_trainer(max_steps=steps, stage="adapt_per_image", devices=devices, num_nodes=1, strategy="auto",
                           logger=False, enable_progress_bar=distributed.rank() == 0)
    try:
        trainer.fit(module, train_dataloaders=loader)
    finally:
        backbone.text_encoder.set_input_embeddings(module.embedding.base)
    return module.embedding.rows.detach().cpu().clone()
