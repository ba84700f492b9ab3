"""One benchmark job in four stages: adapt -> sample -> evaluate -> results.

- **load**: the backbone (``model``) and the dataset (``dataset``);
- **adapt**: the adaptation method (``method``) learns its artifact from the private
  images; ``privacy/*`` is what the release spent;
- **sample**: the guidance method (``guidance``) calibrates its thresholds (its own
  timed step, ``time/calibrate_s``), then guides every step of the sampling plan:
  ``images/``, ``images/index.jsonl``, ``samples_grid.png`` (:mod:`benchmark.sampling`);
- **evaluate**: the metrics ``eval.metrics`` lists, once, on rank 0;
- **membership inference** (``eval.membership_inference.enabled``, rank 0, evaluation
  only): attacks on the release, members vs held-out images, ``privacy/mia_*`` and
  ``privacy_eval/mia_scores.jsonl`` (:mod:`benchmark.metrics.membership_stage`);
- **results**: ``metrics.json``, written atomically and last (:mod:`benchmark.results`).

Guidance is post-processing of the adaptation's release, so a job's privacy is the
adaptation's alone, whatever guidance samples it.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from benchmark.adapt.base import Adaptation, AdaptationMethod, RunContext
from benchmark.config import ConfigError, DatasetConfig, RunConfig, validate_config
from benchmark.datasets import load_dataset
from benchmark.guidance.base import GuidanceMethod, SamplingContext
from benchmark.lightning import distributed
from benchmark.lightning.factories import make_trainer_factory
from benchmark.lightning.loggers import finish, log_sample_grid, make_logger
from benchmark.metrics.evaluate import Evaluator
from benchmark.metrics.membership_stage import check_membership_inference, evaluation_only_keys, membership_inference
from benchmark.models.backbone import Backbone, load_backbone
from benchmark.preflight import preflight
from benchmark.results import metrics_record, numeric_metrics, public_config, write_results
from benchmark.sampling.generate import generate
from benchmark.sampling.plan import sampling_plan

log = logging.getLogger(__name__)
FAMILIES = {"method": AdaptationMethod, "guidance": GuidanceMethod}


def build_method(node: DictConfig, group: str = "method"):
    """Instantiate ``cfg.method`` (an adaptation) or ``cfg.guidance`` from its ``_target_``.

    A wrong or missing key, or a class of the other family, is a ConfigError naming the group.
    """
    try:
        method = instantiate(node, _convert_="all")
    except InstantiationException as err:
        raise ConfigError(f"invalid {group} config ({node.get('_target_')}): {err.__cause__ or err}") from None
    if not isinstance(method, FAMILIES[group]):
        raise ConfigError(f"{group}._target_={node.get('_target_')!r} is not a {FAMILIES[group].__name__}")
    return method


def job_stages(method: AdaptationMethod, guidance: GuidanceMethod, is_world: bool, mia: bool = False) -> list[str]:
    """The stages that do work in this job, in order; ``"-".join`` is its W&B ``job_type``."""
    return [*(["adapt"] if method.learns else []), *(["calibrate"] if guidance.calibrates(is_world) else []),
            "sample", "evaluate", *(["mia"] if mia else [])]


def warn_if_private_prompts(method: AdaptationMethod, dataset: DatasetConfig) -> None:
    """A DP method on a dataset without ``eval_prompts`` samples its private captions."""
    if method.private and not dataset.eval_prompts:
        log.warning("dataset %s lists no eval_prompts: they are its adaptation captions, so evaluation reads private "
                    "text (the release does not)", dataset.name)


def bind_embeddings(backbone: Backbone, adaptation: Adaptation) -> None:
    """Write learned rows into the text encoder under their placeholder tokens."""
    table = backbone.text_encoder.get_input_embeddings().weight
    for token, row in adaptation.embeddings.items():
        with torch.no_grad():
            table[backbone.tokenizer.convert_tokens_to_ids(token)] = row.to(table)


@contextmanager
def timed(timings: dict, stage: str):
    start = time.perf_counter()
    yield
    timings[f"time/{stage}_s"] = round(time.perf_counter() - start, 3)


def run(cfg: DictConfig, output_dir: Path) -> dict:
    """Run one job and return its flat metrics (also written to ``metrics.json``).

    Every setting is checked before anything loads. Under a data-parallel strategy every
    rank runs this; rank 0 evaluates and writes the results, the other ranks return ``{}``.
    """
    run_cfg = validate_config(cfg)
    method, guidance = build_method(cfg.method, "method"), build_method(cfg.guidance, "guidance")
    method.check(run_cfg.privacy)
    guidance.check(run_cfg.eval.sampler)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    with distributed.distributed_session(run_cfg.strategy):
        return _stages(cfg, run_cfg, method, guidance, Path(output_dir))


def _stages(cfg: DictConfig, run_cfg: RunConfig, method: AdaptationMethod, guidance: GuidanceMethod,
            output_dir: Path) -> dict:
    L.seed_everything(run_cfg.seed, workers=True, verbose=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    device = distributed.rank_device(run_cfg.strategy)
    timings: dict[str, float] = {}
    with timed(timings, "load"):
        backbone = load_backbone(run_cfg.model, device)  # the one place the backbone is put on the device
        data = load_dataset(run_cfg.dataset, run_cfg.model.resolution)
    # What evaluation will need (CLIP, SSCD, enough images) is checked before any training.
    preflight(run_cfg.model, run_cfg.eval, data, backbone.world_dir, method.name if method.learns else None)
    guidance.check_backbone(backbone)  # e.g. Bright Ending needs cross-attention processors
    mia_cfg = run_cfg.eval.membership_inference
    check_membership_inference(mia_cfg, backbone, data)
    warn_if_private_prompts(method, run_cfg.dataset)
    evaluator = Evaluator(run_cfg.model, run_cfg.eval, backbone.world_dir, run_cfg.seed, device)
    stages = job_stages(method, guidance, backbone.world_dir is not None, mia_cfg.enabled)
    epsilon = float(run_cfg.privacy.epsilon)
    names = (method.name, guidance.name, data.name)
    logger = make_logger(run_cfg.logger, output_dir, f"{'-'.join(names)}-eps{epsilon:g}-s{run_cfg.seed}",
                         group=str(cfg.get("group") or f"{method.name}-{data.name}"),
                         tags=[f"method:{method.name}", f"guidance:{guidance.name}", f"dataset:{data.name}",
                               f"epsilon:{epsilon:g}", f"model:{backbone.name}"],
                         resolved_config={**public_config(resolved),  # W&B marks what the DP guarantee leaves out
                                          "evaluation_only": sorted(evaluator.evaluation_only_keys()
                                                                    + evaluation_only_keys(mia_cfg))},
                         job_type="-".join(stages))
    make_trainer = make_trainer_factory(run_cfg.strategy, logger, output_dir)
    succeeded = False
    try:
        with timed(timings, "adapt"):
            adaptation = method.adapt(backbone, data, RunContext(output_dir, run_cfg.seed, run_cfg.privacy,
                                                                 run_cfg.strategy, make_trainer))
        bind_embeddings(backbone, adaptation)
        context = SamplingContext(backbone, data, run_cfg.eval.sampler, run_cfg.seed, device)
        with timed(timings, "calibrate"):
            calibration = guidance.calibrate(context)
        with timed(timings, "sample"):
            plan = sampling_plan(data.prompts, run_cfg.eval.num_images, run_cfg.eval.images_per_prompt,
                                 run_cfg.seed, method.placeholder_for(data, adaptation))
            gens = generate(backbone, guidance.guidance(context, calibration), plan, run_cfg.eval.sampler,
                            make_trainer, output_dir, run_cfg.eval.grid_images)
        is_rank_zero = distributed.rank() == 0
        distributed.leave_process_group()
        if not is_rank_zero:
            succeeded = True
            return {}  # evaluation and results are rank 0's
        with timed(timings, "evaluate"):
            scores = evaluator(gens, data)
        identity = {"method": method.name, "guidance": guidance.name, "dataset": data.name,
                    "model": backbone.name, "seed": run_cfg.seed, "job_type": "-".join(stages)}
        attack: dict[str, float] = {}
        if mia_cfg.enabled:
            with timed(timings, "mia"):
                attack = membership_inference(mia_cfg, backbone, data, method, adaptation, gens, evaluator.context,
                                              output_dir, {**identity, "target_epsilon": epsilon})
        record = metrics_record(
            identity=identity, privacy=adaptation.privacy, target_epsilon=epsilon,
            parts=[adaptation.metrics, calibration.metrics(), scores, attack], timings=timings, resolved=resolved,
            dataset_hash=data.content_hash, world_dir=backbone.world_dir)
        if logger is not None:
            logger.log_metrics(numeric_metrics(record))  # the config went to W&B as its config
            log_sample_grid(logger, gens.grid)  # generations only, never training images
        write_results(output_dir, record, resolved)
        succeeded = True
        return record
    finally:
        finish(logger, succeeded)  # one W&B run per job, marked failed if the job failed
