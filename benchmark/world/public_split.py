"""The world's public pretraining data (what the build trains on), and its pixel convention."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.world import archive as A
from benchmark.world import generator as G
from benchmark.world.architectures import WorldScale


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class PublicSplit:
    """The pretraining data: public shape images, archive scenes, memorized copies, motif scenes."""

    def __init__(self, scale: WorldScale, seed: int):
        rng = np.random.default_rng(seed)
        space = G.public_attribute_space()
        self.attrs = [space[i] for i in rng.integers(len(space), size=scale.num_public)]
        self.shape_images = np.stack([G.render_shape_image(a, rng) for a in self.attrs])
        entries = A.archive_entries()
        if scale.name == "micro":  # keep the micro build's archive small
            entries = [e for e in entries if e.memorized][:4] + [e for e in entries if not e.memorized][:40]
        # Motif scenes are each seen once; the motif itself recurs memorized_copies times.
        entries = entries + A.motif_entries(scale.memorized_copies)
        self.archive = entries
        self.archive_images = np.stack([e.render() for e in entries])
        copies = [scale.memorized_copies if e.memorized else 1 for e in entries]
        self.archive_index = np.repeat(np.arange(len(entries)), copies)
        self.archive_captions = [e.training_captions() for e in entries]
        self.rng = rng

    def caption(self, i: int, rng: np.random.Generator) -> str:
        """A freshly drawn caption for item ``i`` (public shape images first, then the archive)."""
        if i < len(self.attrs):
            return G.public_caption(self.attrs[i], rng)
        options = self.archive_captions[self.archive_index[i - len(self.attrs)]]
        return options[rng.integers(len(options))] if len(options) > 1 else options[0]

    def __len__(self) -> int:
        return len(self.attrs) + len(self.archive_index)

    def sample(self, batch: int):
        """A random batch of (images uint8, captions) with freshly drawn public captions."""
        idx = self.rng.integers(len(self), size=batch)
        images = [self.shape_images[i] if i < len(self.attrs) else self.archive_images[self.archive_index[i - len(self.attrs)]]
                  for i in idx]
        return np.stack(images), [self.caption(i, self.rng) for i in idx]
