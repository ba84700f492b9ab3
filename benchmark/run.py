"""One benchmark run: load -> adapt -> sample -> evaluate -> write results.

Everything lands in the Hydra run directory: ``.hydra/`` (the config), ``images/``,
``samples_grid.png``, the released artifact (if any) and, written last and atomically,
``metrics.json``: a run without ``metrics.json`` did not finish.
"""

from __future__ import annotations

import io
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.utils import make_grid

from benchmark.config import ConfigError, RunConfig, validate_config
from benchmark.data.datasets import BenchmarkDataset, EvalPrompt, load_dataset
from benchmark.evaluate import Evaluator, Generations
from benchmark.lightning import distributed
from benchmark.lightning.factories import make_trainer_factory
from benchmark.lightning.loggers import finish, log_sample_grid, make_logger
from benchmark.sampling.predict import PromptSeedDataset, SamplingModule, collate_prompts
from benchmark.adapt.base import Adaptation, AdaptationMethod, RunContext
from benchmark.guidance.calibration import GuidanceMethod
from benchmark.models.backbone import Backbone, load_backbone
from benchmark.utils.io import atomic_write_bytes, atomic_write_json
from benchmark.utils.provenance import config_hash, git_commit, package_versions

log = logging.getLogger(__name__)

# Top-level keys that do not change a job's results: left out of its config hash, so that
# starting the same sweep again (another W&B group, a forced rerun, other GPUs) finds it.
RUNTIME_KEYS = ("rerun", "group", "gpu_pool")  # strength presets are config: guidance.* holds their knob values


def job_config_hash(resolved: dict) -> str:
    """The hash written to ``metrics.json`` and compared on resume (runtime keys left out)."""
    return config_hash({k: v for k, v in resolved.items() if k not in RUNTIME_KEYS})


def finished_metrics(output_dir: Path, cfg: DictConfig) -> dict | None:
    """The metrics of a finished run of exactly this config in ``output_dir``, else None.

    A missing or unreadable ``metrics.json``, or one written for another config (its
    ``config_hash`` differs), means the job must run (and replaces the file at its end).
    """
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("%s is unreadable (%s): running the job again", path, err)
        return None
    expected = job_config_hash(OmegaConf.to_container(cfg, resolve=True))
    if not isinstance(metrics, dict) or metrics.get("config_hash") != expected:
        log.warning("%s was written for another config (hash %s, this job %s): running the job again",
                    path, metrics.get("config_hash") if isinstance(metrics, dict) else None, expected)
        return None
    return metrics


@contextmanager
def _timed(timings: dict, stage: str):
    start = time.perf_counter()
    yield
    timings[f"time/{stage}_s"] = round(time.perf_counter() - start, 3)


def build_method(node: DictConfig, group: str = "method"):
    """Instantiate ``cfg.method`` (an adaptation) or ``cfg.guidance`` (``_target_``).

    A wrong key is a ConfigError naming the group; so is a class of the other family.
    """
    family = {"method": AdaptationMethod, "guidance": GuidanceMethod}[group]
    try:
        method = instantiate(node, _convert_="all")
    except InstantiationException as err:
        raise ConfigError(f"invalid {group} config ({node.get('_target_')}): {err.__cause__ or err}") from None
    if not isinstance(method, family):
        raise ConfigError(f"{group}._target_={node.get('_target_')!r} is not a {family.__name__}")
    return method


def sampling_plan(prompts: list[EvalPrompt], num_images: int, images_per_prompt: int | None,
                  seed: int) -> tuple[list[int], list[int]]:
    """(prompt index, seed) per image, one fixed seed per image.

    With ``images_per_prompt`` each prompt gets exactly that many images; otherwise
    ``num_images`` are dealt round-robin over the prompts.
    """
    if images_per_prompt:
        order = [p for p in range(len(prompts)) for _ in range(images_per_prompt)]
    else:
        order = [i % len(prompts) for i in range(num_images)]
    seeds = [seed * 1_000_003 + i for i in range(len(order))]
    return order, seeds


def bind_embeddings(backbone: Backbone, adaptation: Adaptation) -> None:
    """Write learned rows into the text encoder under their placeholder tokens."""
    table = backbone.text_encoder.get_input_embeddings().weight
    for token, row in adaptation.embeddings.items():
        token_id = backbone.tokenizer.convert_tokens_to_ids(token)
        with torch.no_grad():
            table[token_id] = row.to(table)


def generate(backbone: Backbone, guidance: GuidanceMethod, data: BenchmarkDataset, run: RunConfig,
             placeholder: str, make_trainer, output_dir: Path) -> Generations:
    prompt_index, seeds = sampling_plan(data.prompts, run.eval.num_images, run.eval.images_per_prompt, run.seed)
    texts = [data.prompts[i].text(placeholder) for i in prompt_index]
    # Per-image prompt information for guidance methods (PRSS reads the paraphrases).
    extras = [{"paraphrases": data.prompts[i].paraphrases, "memorized": data.prompts[i].memorized}
              for i in prompt_index]
    loader = DataLoader(PromptSeedDataset(texts, seeds, prompt_index, extras), batch_size=run.eval.sampler.batch_size,
                        collate_fn=collate_prompts)
    module = SamplingModule(backbone, run.eval.sampler, guidance.guidance())
    outputs = make_trainer(stage="sample").predict(module, dataloaders=loader)
    index = torch.cat([o["index"] for o in outputs])
    images = torch.cat([o["images"] for o in outputs])
    # Guidance-reported per-image statistics (first-step magnitude, PRSS trigger).
    keys = set.intersection(*(set(o.get("stats", {})) for o in outputs)) if outputs else set()
    stats = {k: torch.cat([o["stats"][k] for o in outputs]) for k in sorted(keys)}
    if distributed.world_size() > 1:
        # Each rank sampled a shard of the (prompt, seed) items; every image has its own
        # seed, so the gathered set does not depend on how the items were sharded.
        shards = distributed.all_gather_objects((index, images, stats))
        index = torch.cat([i for i, _, _ in shards])
        images = torch.cat([im for _, im, _ in shards])
        stats = {k: torch.cat([s[k] for _, _, s in shards if k in s]) for k in stats}  # a rank may have no items
    if len(index) != len(texts) or not torch.equal(index.sort().values, torch.arange(len(texts))):
        raise RuntimeError(f"sampling returned items {sorted(index.tolist())}, expected 0..{len(texts) - 1}")
    order = index.argsort()
    images = images[order]
    stats = {k: v[order] for k, v in stats.items()}
    folder = output_dir / "images"
    if distributed.rank() == 0:
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    return Generations(images, prompt_index, texts, folder, stats)


def save_grid(images: torch.Tensor, path: Path, count: int) -> Path:
    """A sample grid, upscaled so that 32x32 world images are visible."""
    grid = make_grid(images[:count], nrow=min(8, count), padding=2, pad_value=255)
    picture = Image.fromarray(grid.permute(1, 2, 0).numpy())
    if images.shape[-1] < 128:
        scale = max(1, 128 // images.shape[-1])
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def world_recipe(backbone: Backbone) -> str:
    """The recipe version of the loaded world (from its world.json), or "none" for real models."""
    if backbone.world_dir is None:
        return "none"
    return json.loads((backbone.world_dir / "world.json").read_text()).get("recipe_version", "unknown")


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"config": {"eval": {"num_images": 8}}} -> {"config/eval/num_images": 8}; lists as JSON text."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return flat


def run(cfg: DictConfig, output_dir: Path) -> dict:
    """Run one job and return its flat metrics (also written to ``metrics.json``).

    Under a data-parallel strategy every rank runs this; rank 0 evaluates and writes the
    results, the other ranks return ``{}`` after sampling.
    """
    output_dir = Path(output_dir)
    run_cfg = validate_config(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    method = build_method(cfg.method, "method")
    guidance = build_method(cfg.guidance, "guidance")
    method.check(run_cfg.privacy)
    guidance.check_sampler(run_cfg.eval.sampler)
    with distributed.distributed_session(run_cfg.strategy):
        return _run_stages(cfg, run_cfg, resolved, method, guidance, output_dir)


def job_type(method: AdaptationMethod) -> str:
    """The stages a job runs (W&B ``job_type``): ``adapt`` only when the adaptation learns something."""
    adapts = type(method).adapt is not AdaptationMethod.adapt
    return "adapt-sample-evaluate" if adapts else "sample-evaluate"


def _run_stages(cfg: DictConfig, run_cfg: RunConfig, resolved: dict, method: AdaptationMethod,
                guidance: GuidanceMethod, output_dir: Path) -> dict:
    L.seed_everything(run_cfg.seed, workers=True, verbose=False)
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        backbone = load_backbone(run_cfg.model)
        data = load_dataset(run_cfg.dataset, run_cfg.model.resolution)
    epsilon = float(run_cfg.privacy.epsilon)
    tags = [f"method:{method.name}", f"guidance:{guidance.name}", f"dataset:{data.name}", f"epsilon:{epsilon:g}", f"model:{backbone.name}"]
    run_name = f"{method.name}-{guidance.name}-{data.name}-eps{epsilon:g}-s{run_cfg.seed}"
    group = cfg.get("group") or f"{method.name}-{data.name}"
    logger = make_logger(run_cfg.logger, output_dir, run_name, group=str(group), tags=tags,
                         resolved_config=resolved, job_type=job_type(method))
    make_trainer = make_trainer_factory(run_cfg.strategy, logger, output_dir)
    ctx = RunContext(output_dir, run_cfg.seed, run_cfg.privacy, run_cfg.strategy, make_trainer)
    succeeded = False
    try:
        with _timed(timings, "adapt"):
            adaptation = method.adapt(backbone, data, ctx)
        bind_embeddings(backbone, adaptation)
        with _timed(timings, "calibrate"):
            guidance_metrics = guidance.calibrate(backbone, data, run_cfg.seed)
        with _timed(timings, "sample"):
            gens = generate(backbone, guidance, data, run_cfg, method.placeholder_for(data, adaptation),
                            make_trainer, output_dir)
        is_rank_zero = distributed.rank() == 0
        distributed.leave_process_group()
        if not is_rank_zero:
            succeeded = True
            return {}  # metrics are computed once, on rank 0
        grid = save_grid(gens.images, output_dir / "samples_grid.png", run_cfg.eval.grid_images)
        with _timed(timings, "evaluate"):
            evaluator = Evaluator(run_cfg.model, run_cfg.eval, backbone.world_dir, run_cfg.seed)
            scores = evaluator(gens, data, data.prompts)
        timings["time/total_s"] = round(sum(timings.values()), 3)
        metrics = {
            "method": method.name, "guidance": guidance.name, "dataset": data.name, "model": backbone.name, "seed": run_cfg.seed,
            "privacy/epsilon": adaptation.privacy["epsilon"], "privacy/delta": adaptation.privacy["delta"],
            "privacy/target_epsilon": epsilon,
            **{f"privacy/{k}": v for k, v in adaptation.privacy.items() if k not in ("epsilon", "delta")},
            **adaptation.metrics, **guidance_metrics,
            **scores, **timings,
            "config_hash": job_config_hash(resolved), "dataset_hash": data.content_hash,
            "git_commit": git_commit(), "world_recipe": world_recipe(backbone),
            **{f"version/{k}": v for k, v in package_versions().items()},
            **flatten({"config": resolved}),
        }
        if logger is not None:
            numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and not k.startswith(("config/", "version/"))}  # the config goes to W&B as config
            logger.log_metrics(numeric)
            log_sample_grid(logger, grid)  # generations only, never training images
        atomic_write_json(output_dir / "resolved_config.json", resolved)
        atomic_write_json(output_dir / "metrics.json", metrics)
        succeeded = True
        return metrics
    finally:
        finish(logger, succeeded)  # one W&B run per job, marked failed if it failed
