"""Textual inversion (``method=ti``), the non-private baseline of METHODS.md.

A placeholder token is added to the tokenizer and only its embedding row is trained with
the denoising loss, prompts drawn from templates. The trainable rows live in their own
small parameter (:class:`PlaceholderEmbedding`), so no other row can move and DP-SGD can
later clip per-example gradients of just these rows. One module trains ``k`` rows at
once, each example selecting its own row: per-image TI for DPAgg-TI reuses it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmark.config import PrivacyConfig
from benchmark.data.types import BenchmarkDataset
from benchmark.adapt.base import Adaptation, AdaptationMethod, RunContext, check_positive, write_artifact
from benchmark.models.backbone import Backbone

# Generic templates in the spirit of the textual-inversion paper; "{caption}" is
# replaced by the image's own caption when a dataset's templates use it.
STYLE_TEMPLATES = (
    "a painting in the style of {}", "a rendering in the style of {}", "a picture in the style of {}",
    "a drawing in the style of {}", "an image in the style of {}", "a small painting in the style of {}",
)
OBJECT_TEMPLATES = ("a photo of a {}", "a rendering of a {}", "a picture of a {}", "a photo of the {}",
                    "an image of a {}", "a close-up photo of a {}")


def fill_template(template: str, caption: str, placeholder: str) -> str:
    """A TI prompt: ``{caption}`` becomes the image's caption, ``{}`` the placeholder token."""
    return template.replace("{caption}", caption).format(placeholder)


def resolve_templates(configured: Optional[list[str]], data: BenchmarkDataset) -> list[str]:
    """The method's own templates, else the dataset's, else the paper's generic ones."""
    if configured:
        return list(configured)
    if data.config.concept.templates:
        return list(data.config.concept.templates)
    return list(STYLE_TEMPLATES if data.config.concept.kind == "style" else OBJECT_TEMPLATES)


class PlaceholderRows(nn.Module):
    """The trainable placeholder rows: ``rows[index]``.

    A leaf module of its own, without buffers: Opacus refuses trainable modules that hold
    buffers, and DP-SGD registers a per-sample gradient for this one
    (:mod:`benchmark.adapt.dpsgd.opacus_glue`).
    """

    def __init__(self, rows: torch.Tensor):
        super().__init__()
        self.rows = nn.Parameter(rows.detach().clone().float())

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.rows[index]


class PlaceholderEmbedding(nn.Module):
    """Token embedding whose placeholder ids read from trainable ``rows``; all else frozen."""

    def __init__(self, base: nn.Embedding, placeholder_ids: list[int], rows: torch.Tensor):
        super().__init__()
        self.base = base
        self.learned = PlaceholderRows(rows)
        lookup = torch.full((base.num_embeddings,), -1, dtype=torch.long)
        lookup[torch.tensor(placeholder_ids)] = torch.arange(len(placeholder_ids))
        self.register_buffer("row_of_id", lookup, persistent=False)

    @property
    def rows(self) -> nn.Parameter:
        return self.learned.rows

    @property
    def weight(self) -> torch.Tensor:  # transformers reads .weight for shapes and dtypes
        return self.base.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeds = self.base(input_ids)
        row = self.row_of_id[input_ids]
        # Always through ``learned``, even with no placeholder in the batch: Opacus' hooks
        # must see every forward (an empty Poisson batch still takes a noisy step).
        learned = self.learned(row.clamp(min=0)).to(embeds.dtype)
        return torch.where((row >= 0).unsqueeze(-1), learned, embeds)


class TemplatePromptDataset(Dataset):
    """(latent mean, latent std, prompt ids, row index) per example; prompts re-drawn per access."""

    def __init__(self, backbone: Backbone, data: BenchmarkDataset, templates: list[str],
                 placeholders: list[str], example_rows: list[int], seed: int):
        self.mu, self.sd = backbone.encode_images(data.adapt.images)
        self.captions = data.adapt.captions
        self.templates = templates
        self.placeholders = placeholders
        self.example_rows = example_rows
        self.tokenize = backbone.tokenize
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.mu)

    def prompt(self, i: int) -> str:
        template = self.rng.choice(self.templates)
        return fill_template(template, self.captions[i], self.placeholders[self.example_rows[i]])

    def __getitem__(self, i: int):
        return {"mu": self.mu[i], "sd": self.sd[i], "input_ids": self.tokenize([self.prompt(i)])[0],
                "row": self.example_rows[i]}


def noisy_latents_and_target(scheduler, mu, sd, latent_noise, noise, t):
    """``(noisy latents, t, target)`` of the denoising loss for given draws.

    The latent is sampled from the VAE posterior ``mu + sd * latent_noise``; the target is
    the noise, or the velocity for v-prediction models (the offline world).
    """
    latents = mu + sd * latent_noise.to(mu)
    noise = noise.to(latents)
    t = t.to(latents.device)
    noisy = scheduler.add_noise(latents, noise, t)
    target = scheduler.get_velocity(latents, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
    return noisy, t, target


class TextualInversionModule(L.LightningModule):
    """Lightning module that trains placeholder rows with the denoising loss."""

    def __init__(self, backbone: Backbone, placeholder_ids: list[int], init_rows: torch.Tensor,
                 learning_rate: float, seed: int, max_norm: Optional[float] = None):
        super().__init__()
        self.max_norm = max_norm  # None: rows are free; else projected onto the ball after every step
        self.text_encoder = backbone.text_encoder
        self.unet = backbone.unet
        self.noise_scheduler = backbone.scheduler
        self.embedding = PlaceholderEmbedding(self.text_encoder.get_input_embeddings(), placeholder_ids, init_rows)
        self.text_encoder.set_input_embeddings(self.embedding)
        self.learning_rate = learning_rate
        self.noise_generator = torch.Generator().manual_seed(seed)

    def denoising_loss(self, batch) -> torch.Tensor:
        """Per-example loss ``|| model_output - target ||^2`` averaged over latent elements.

        The latent sample, noise and timestep of each example are drawn here from the
        module's generator, unless the batch brings them (``latent_noise``, ``noise``,
        ``timesteps``): per-image TI draws them per image so that a batched run repeats
        independent per-image runs exactly.
        """
        mu = batch["mu"]
        if "noise" in batch:
            latent_noise, noise, t = batch["latent_noise"], batch["noise"], batch["timesteps"]
        else:
            gen = self.noise_generator
            latent_noise = torch.randn(mu.shape, generator=gen)
            noise = torch.randn(mu.shape, generator=gen)
            t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(mu),), generator=gen)
        return self.loss_given_draws(mu, batch["sd"], batch["input_ids"], latent_noise, noise, t)

    def loss_given_draws(self, mu, sd, input_ids, latent_noise, noise, t) -> torch.Tensor:
        """Per-example denoising loss for given latent-sampling noise, diffusion noise and timesteps."""
        noisy, t, target = noisy_latents_and_target(self.noise_scheduler, mu, sd, latent_noise, noise, t)
        hidden = self.text_encoder(input_ids)[0]
        pred = self.unet(noisy.to(self.unet.dtype), t, encoder_hidden_states=hidden.to(self.unet.dtype)).sample
        return F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)

    def training_step(self, batch, batch_idx):
        per_example = self.denoising_loss(batch)
        loss = per_example.mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(per_example))
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.max_norm is not None:  # projected gradient descent onto {|v| <= max_norm}
            with torch.no_grad():
                rows = self.embedding.rows
                rows.mul_((self.max_norm / rows.norm(dim=-1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))

    def configure_optimizers(self):
        # No weight decay: decoupled decay would shrink the row towards zero for no reason.
        return torch.optim.AdamW([self.embedding.rows], lr=self.learning_rate, weight_decay=0.0)


@dataclass(kw_only=True)
class TextualInversion(AdaptationMethod):
    """``method=ti``: learn one placeholder embedding from the adaptation split (not private).

    Every field comes from ``conf/method/ti.yaml``, the one place defaults live.
    """

    name: str
    max_steps: int
    batch_size: int
    learning_rate: float
    templates: Optional[list[str]]  # None: the dataset's concept.templates, else the paper's generic ones
    max_norm: Optional[float]  # None: free row; else its norm is kept <= max_norm (projected)
    private = False

    def templates_for(self, data: BenchmarkDataset) -> list[str]:
        return resolve_templates(self.templates, data)

    def check(self, privacy: PrivacyConfig) -> None:
        super().check(privacy)
        check_positive(self.max_steps, "method.max_steps", integer=True)
        check_positive(self.batch_size, "method.batch_size", integer=True)
        check_positive(self.learning_rate, "method.learning_rate")
        if self.max_norm is not None:
            check_positive(self.max_norm, "method.max_norm")

    def adapt(self, backbone: Backbone, data: BenchmarkDataset, ctx: RunContext) -> Adaptation:
        concept = data.config.concept
        ids, init = backbone.add_placeholder_tokens([concept.placeholder], concept.initializer_token)
        dataset = TemplatePromptDataset(backbone, data, self.templates_for(data), [concept.placeholder],
                                        [0] * len(data.adapt), ctx.seed)
        loader = DataLoader(dataset, batch_size=min(self.batch_size, len(dataset)), shuffle=True,
                            generator=torch.Generator().manual_seed(ctx.seed), drop_last=False)
        module = TextualInversionModule(backbone, ids, init.unsqueeze(0), self.learning_rate, ctx.seed, self.max_norm)
        trainer = ctx.make_trainer(max_steps=self.max_steps, stage="adapt")
        trainer.fit(module, train_dataloaders=loader)
        learned = module.embedding.rows.detach()[0].cpu()
        module.text_encoder.set_input_embeddings(module.embedding.base)  # back to a plain embedding
        released = ctx.output_dir / "learned_embeds.safetensors"
        write_artifact({concept.placeholder: learned}, released)
        loss = trainer.callback_metrics.get("train/loss")
        return Adaptation(
            placeholder=concept.placeholder,
            embeddings={concept.placeholder: learned},
            metrics={"adapt/final_loss": float(loss) if loss is not None else float("nan"),
                     "adapt/steps": int(trainer.global_step), "adapt/embedding_norm": float(learned.norm())},
        )
