"""The sampling stage: run the plan through Lightning ``predict``, gather, write the outputs.

:func:`generate` writes, on rank 0, into the run directory:

- ``images/{index:05d}.png``: image ``index`` of the plan;
- ``images/index.jsonl``: one JSON object per image, in plan order (see :func:`index_rows`),
  written atomically, so scripts and the report read prompts, seeds and guidance
  statistics from it instead of re-deriving the plan;
- ``samples_grid.png``: the first ``grid_images`` images.

The returned :class:`Generations` holds every image in plan order on every rank.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.utils import make_grid

from benchmark.config import SamplerConfig
from benchmark.lightning import distributed
from benchmark.models.backbone import Backbone
from benchmark.sampling.generations import Generations
from benchmark.sampling.plan import SampleItem
from benchmark.sampling.predict import PlanDataset, SamplingModule, collate_items
from benchmark.sampling.sampler import Guidance
from benchmark.utils.io import atomic_write_bytes

INDEX_FILE = "index.jsonl"


def gather_outputs(outputs: list[dict], expected: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This rank's predict outputs (and every other rank's) -> images and stats in plan order.

    Raises RuntimeError unless the ranks returned every plan index exactly once.
    """
    index = torch.cat([o["index"] for o in outputs]) if outputs else torch.zeros(0, dtype=torch.long)
    images = torch.cat([o["images"] for o in outputs]) if outputs else None
    # Only keys every batch reported (a rule may report a key on some batches only).
    keys = set.intersection(*(set(o.get("stats", {})) for o in outputs)) if outputs else set()
    stats = {k: torch.cat([o["stats"][k] for o in outputs]) for k in sorted(keys)}
    if distributed.world_size() > 1:
        # Each rank sampled a shard of the items; every image has its own seed, so the
        # gathered set does not depend on how the items were sharded.
        shards = [s for s in distributed.all_gather_objects((index, images, stats)) if len(s[0])]
        index = torch.cat([i for i, _, _ in shards])
        images = torch.cat([im for _, im, _ in shards])
        common = set.intersection(*(set(s) for _, _, s in shards)) if shards else set()
        stats = {k: torch.cat([s[k] for _, _, s in shards]) for k in sorted(common)}
    if len(index) != expected or not torch.equal(index.sort().values, torch.arange(expected)):
        raise RuntimeError(f"sampling returned items {sorted(index.tolist())}, expected 0..{expected - 1}")
    order = index.argsort()
    return images[order], {k: v[order] for k, v in stats.items()}


def _json_number(value):
    """A tensor element as a JSON value: bool, int, or a float (None where not finite)."""
    value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def index_rows(items: Sequence[SampleItem], stats: dict[str, torch.Tensor]) -> list[dict]:
    """One row per image: ``file``, ``index``, ``prompt_index``, ``seed``, ``text`` (sampled),
    ``original`` (without placeholder), ``memorized``, and every per-image guidance statistic
    (``first_step_magnitude``, ``triggered``, ``chosen_candidate``, ...) as a JSON scalar."""
    rows = []
    for k, it in enumerate(items):
        row = {"file": it.file, "index": it.index, "prompt_index": it.prompt_index, "seed": it.seed,
               "text": it.text, "original": it.original, "memorized": it.memorized}
        row.update({name: _json_number(values[k]) for name, values in stats.items()})
        rows.append(row)
    return rows


def read_index(folder: Path) -> list[dict]:
    """The rows of ``folder/index.jsonl`` in plan order."""
    return [json.loads(line) for line in (Path(folder) / INDEX_FILE).read_text().splitlines() if line.strip()]


def save_grid(images: torch.Tensor, path: Path, count: int) -> Path:
    """A sample grid of the first ``count`` images, upscaled so that 32x32 world images are visible."""
    grid = make_grid(images[:count], nrow=min(8, count), padding=2, pad_value=255)
    picture = Image.fromarray(grid.permute(1, 2, 0).numpy())
    if images.shape[-1] < 128:
        scale = max(1, 128 // images.shape[-1])
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_outputs(images: torch.Tensor, items: Sequence[SampleItem], stats: dict[str, torch.Tensor],
                  output_dir: Path, grid_images: int) -> tuple[Path, Path, Path]:
    """PNGs, ``images/index.jsonl`` (written last, atomically: it lists only images that exist) and the grid."""
    folder = Path(output_dir) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for it, image in zip(items, images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / it.file)
    rows = index_rows(items, stats)
    index_file = folder / INDEX_FILE
    atomic_write_bytes(index_file, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows).encode())
    grid = save_grid(images, Path(output_dir) / "samples_grid.png", grid_images)
    return folder, index_file, grid


def generate(backbone: Backbone, guidance: Guidance, plan: Sequence[SampleItem], sampler: SamplerConfig,
             make_trainer: Callable[..., object], output_dir: Path, grid_images: int) -> Generations:
    """Sample every item of ``plan`` with ``guidance`` (sharded over the ranks) and write the outputs.

    ``plan[i].index`` must be ``i``. Every rank returns all images in plan order; rank 0
    alone writes files.
    """
    plan = list(plan)
    if [it.index for it in plan] != list(range(len(plan))):
        raise ValueError("plan items must be numbered 0..n-1 in order (SampleItem.index)")
    loader = DataLoader(PlanDataset(plan), batch_size=sampler.batch_size, collate_fn=collate_items)
    module = SamplingModule(backbone, sampler, guidance)
    outputs = make_trainer(stage="sample").predict(module, dataloaders=loader)
    images, stats = gather_outputs(outputs, len(plan))
    folder, index_file, grid = Path(output_dir) / "images", None, None
    if distributed.rank() == 0:
        folder, index_file, grid = write_outputs(images, plan, stats, output_dir, grid_images)
    return Generations(images, [it.prompt_index for it in plan], [it.text for it in plan], folder, stats, plan,
                       index_file, grid)
