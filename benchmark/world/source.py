"""``dataset.source: world``: the offline world's populations, loaded like any image folder.

The world renders a population into the cache as an image folder
(:mod:`benchmark.world.datasets`), reads it back with the data package's loader, and
attaches to each evaluation prompt the attributes its words name: ground truth that
only the world has, read by its judge (the concept metric). Other sources never get
attributes. Importing this module registers the source (see :mod:`benchmark.datasets`).
"""

from __future__ import annotations

from benchmark.config import DatasetConfig
from benchmark.data.imagefolder import load_folder_splits
from benchmark.data.sources import register_source
from benchmark.data.types import DatasetError, DatasetParts
from benchmark.world.datasets import materialize_world_dataset
from benchmark.world.generator import BACKGROUNDS, COLOURS, FILLS, SHAPES

# The caption column of the world's metadata.jsonl (materialize_world_dataset writes it).
WORLD_CAPTION = "text"


def attributes_in_text(text: str) -> dict[str, str]:
    """The shape, colour, fill and background words a prompt names, by attribute."""
    words = text.replace(",", " ").split()
    found: dict[str, str] = {}
    for key, values in (("shape", SHAPES), ("colour", COLOURS), ("fill", FILLS)):
        hits = [w for w in words if w in values]
        if hits:
            found[key] = hits[0]
    for i, w in enumerate(words[:-1]):
        if w in BACKGROUNDS and words[i + 1] == "background":
            found["background"] = w
    return found


def load_world_source(cfg: DatasetConfig, resolution: int) -> DatasetParts:
    """Render (once, cached) and load ``cfg.world``'s population; prompts carry their attributes."""
    if cfg.world is None:
        raise DatasetError(f"dataset '{cfg.name}': source 'world' needs a 'world:' section")
    parts = load_folder_splits(cfg, materialize_world_dataset(cfg.world), resolution, WORLD_CAPTION)
    for prompt in parts.prompts:
        prompt.attributes = attributes_in_text(prompt.template)
    return parts


register_source("world", load_world_source)
