"""One benchmark run: load -> adapt -> sample -> evaluate -> write results.

Everything lands in the Hydra run directory: ``.hydra/`` (the config), ``images/``,
``samples_grid.png``, the released artifact (if any) and, written last and atomically,
``metrics.json``: a run without ``metrics.json`` did not finish.
"""

from __future__ import annotations

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

from benchmark.config import ConfigError, RunConfig, validate_config
from benchmark.data.types import BenchmarkDataset, EvalPrompt
from benchmark.datasets import load_dataset
from benchmark.metrics.evaluate import Evaluator, evaluation_device
from benchmark.sampling.generations import Generations
from benchmark.lightning import distributed
from benchmark.lightning.factories import make_logger, make_trainer_factory
from benchmark.sampling.generate import generate, sampling_device
from benchmark.sampling.plan import sampling_plan
from benchmark.adapt.base import Adaptation, AdaptationMethod, RunContext
from benchmark.guidance.base import GuidanceMethod, SamplingContext
from benchmark.models.backbone import Backbone, load_backbone
from benchmark.utils.io import atomic_write_json
from benchmark.utils.provenance import config_hash, git_commit, package_versions

log = logging.getLogger(__name__)

# Top-level keys that do not change a job's results: left out of its config hash, so that
# starting the same sweep again (another W&B group, a forced rerun, other GPUs) finds it.
RUNTIME_KEYS = ("rerun", "group", "gpu_pool", "knob_level", "sweep_knobs")  # the knob value is in method.*


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


def bind_embeddings(backbone: Backbone, adaptation: Adaptation) -> None:
    """Write learned rows into the text encoder under their placeholder tokens."""
    table = backbone.text_encoder.get_input_embeddings().weight
    for token, row in adaptation.embeddings.items():
        token_id = backbone.tokenizer.convert_tokens_to_ids(token)
        with torch.no_grad():
            table[token_id] = row.to(table)


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
    guidance.check(run_cfg.eval.sampler)
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
    # Built before any work so that a wrong eval.metrics name fails at once; encoders load when first used.
    evaluator = Evaluator(run_cfg.model, run_cfg.eval, backbone.world_dir, run_cfg.seed,
                          evaluation_device(run_cfg.strategy))
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
        sampling = SamplingContext(backbone, data, run_cfg.eval.sampler, run_cfg.seed,
                                   sampling_device(run_cfg.strategy))
        with _timed(timings, "calibrate"):
            calibration = guidance.calibrate(sampling)
        guidance_metrics = calibration.metrics()
        with _timed(timings, "sample"):
            plan = sampling_plan(data.prompts, run_cfg.eval.num_images, run_cfg.eval.images_per_prompt,
                                 run_cfg.seed, method.placeholder_for(data, adaptation))
            gens = generate(backbone, guidance.guidance(sampling, calibration), plan, run_cfg.eval.sampler,
                            make_trainer, output_dir, run_cfg.eval.grid_images)
        is_rank_zero = distributed.rank() == 0
        distributed.leave_process_group()
        if not is_rank_zero:
            succeeded = True
            return {}  # metrics are computed once, on rank 0
        grid = gens.grid
        with _timed(timings, "evaluate"):
            scores = evaluator(gens, data)
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
            if run_cfg.logger.kind == "wandb" and run_cfg.logger.log_images:
                logger.log_image("samples_grid", [str(grid)])  # generations only, never training images
        atomic_write_json(output_dir / "resolved_config.json", resolved)
        atomic_write_json(output_dir / "metrics.json", metrics)
        succeeded = True
        return metrics
    finally:
        if logger is not None and run_cfg.logger.kind == "wandb":
            import wandb

            wandb.finish(exit_code=0 if succeeded else 1)  # one W&B run per job, marked failed if it failed
