"""Cost of DPAgg-TI's per-image TI, batched vs sequential, and of an epsilon sweep.

1. Per-image TI for ``--images`` images at equal steps per image: one batched run (every
   row stepped together) vs a sequential loop (one run per image, as a naive
   implementation would do). Same latents, draws and hyperparameters, so the two give
   the same embeddings (the largest difference is printed).
2. An epsilon sweep: the adapt stage of ``method=dpagg_ti`` at the first epsilon with an
   empty cache (the single-epsilon run: trains, aggregates), then at each other epsilon
   on a freshly loaded backbone (loads the cached embeddings, aggregates). The sweep
   costs the sum; the ratio is sweep / single run. Reported for the adapt stage alone
   and with the backbone load each job also pays. Sampling and evaluation are not
   included: every epsilon needs its own generations whatever the method.

    python scripts/benchmark_per_image_ti.py [--model builtin:tiny] [--images 32] [--steps 200] [--json out.json]

Steps and draws default to ``conf/method/dpagg_ti.yaml``. The per-image embeddings go
to a temporary owner-only cache that is deleted at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

MODULE = "benchmark.adapt.per_image_ti_benchmarking"  # not __name__: that is "__main__" under python -m


def measure(model: str, images: int, steps: int, batch_size: int, epsilons: list[str], seed: int) -> dict:
    """Run both measurements; return the numbers (``epsilons`` as strings: JSON has no inf)."""
    import torch
    from hydra.utils import instantiate

    from benchmark.adapt.base import RunContext
    from benchmark.adapt.per_image_ti import train_per_image_embeddings
    from benchmark.adapt.textual_inversion import resolve_templates
    from benchmark.config import compose_config, validate_config
    from benchmark.datasets import load_dataset
    from benchmark.lightning.factories import make_trainer_factory
    from benchmark.models.backbone import load_backbone

    overrides = ["model=micro" if model == "builtin:micro" else "model=tiny", f"model.pretrained={model}",
                 "dataset=tiny_style", f"dataset.world.num_adapt={images}", "dataset.world.num_heldout=8",
                 "method=dpagg_ti", f"method.max_steps={steps}", f"method.batch_size={batch_size}",
                 "privacy=dp", "logger=none", f"seed={seed}"]
    cfg = compose_config(overrides)
    run = validate_config(cfg)
    data = load_dataset(run.dataset, run.model.resolution)
    method = instantiate(cfg.method, _convert_="all")
    templates = resolve_templates(None, data)
    n = len(data.adapt)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_trainer = make_trainer_factory(run.strategy, None, tmp)
        backbone = load_backbone(run.model)
        _, init = backbone.add_placeholder_tokens(["<bench>"], data.config.concept.initializer_token)
        mu, sd = backbone.encode_images(data.adapt.images)

        def per_image(ids: list[int], steps: int = steps) -> torch.Tensor:
            return train_per_image_embeddings(
                backbone, mu[ids], sd[ids], [data.adapt.captions[i] for i in ids], ids, templates, init,
                steps=steps, learning_rate=method.learning_rate, batch_size=batch_size, seed=seed,
                make_trainer=make_trainer)

        per_image([0], steps=2)  # warm-up: first-call costs (allocator, Lightning imports) hit neither side
        start = time.perf_counter()
        batched = per_image(list(range(n)))
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        sequential = torch.cat([per_image([i]) for i in range(n)])
        sequential_s = time.perf_counter() - start

        method.cache_dir = str(tmp / "cache")
        adapt_s, load_s = [], []
        for k, epsilon in enumerate(float(e) for e in epsilons):
            start = time.perf_counter()
            backbone = load_backbone(run.model)  # each job of a sweep loads its backbone
            load_s.append(time.perf_counter() - start)
            privacy = dataclasses.replace(run.privacy, epsilon=epsilon)
            out = tmp / f"eps{k}"
            out.mkdir()
            ctx = RunContext(out, seed, privacy, run.strategy, make_trainer_factory(run.strategy, None, out))
            start = time.perf_counter()
            adaptation = method.adapt(backbone, data, ctx)
            adapt_s.append(time.perf_counter() - start)
            if adaptation.metrics["adapt/cache_hit"] != int(k > 0):
                raise RuntimeError(f"epsilon {epsilon}: expected a cache {'hit' if k else 'miss'}")

    single, sweep = adapt_s[0], sum(adapt_s)
    return {
        "cpus": os.cpu_count(), "torch": torch.__version__,
        "model": model, "images": n, "steps_per_image": steps, "draws_per_image_per_step": batch_size,
        "torch_threads": torch.get_num_threads(),
        "batched_per_image_ti_s": round(batched_s, 3),
        "sequential_per_image_ti_s": round(sequential_s, 3),
        "speedup_batched_over_sequential": round(sequential_s / batched_s, 2),
        "max_abs_diff_batched_vs_sequential": float((batched - sequential).abs().max()),
        "epsilons": list(epsilons),
        "single_epsilon_adapt_s": round(single, 3),
        "sweep_adapt_s": round(sweep, 3),
        "sweep_over_single_adapt": round(sweep / single, 3),
        "sweep_over_single_with_load": round((sweep + sum(load_s)) / (single + load_s[0]), 3),
        "cached_adapt_s_mean": round(sum(adapt_s[1:]) / max(len(adapt_s) - 1, 1), 3),
        "backbone_load_s_mean": round(sum(load_s) / len(load_s), 3),
    }


def main(argv: Optional[list[str]] = None, prog: Optional[str] = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from benchmark.config import compose_config
    from benchmark.models.backbone import PACKAGED_WORLD
    from benchmark.utils.io import atomic_write_json

    default_model = "builtin:tiny" if (PACKAGED_WORLD / "model_index.json").is_file() else "builtin:micro"
    defaults = compose_config(["method=dpagg_ti"]).method  # the method's YAML: the one source of defaults
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("--model", default=default_model, help=f"model.pretrained (default here: {default_model})")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--steps", type=int, default=defaults.max_steps, help="TI steps per image (method default)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="draws per image per step")
    p.add_argument("--epsilons", default="0.5,1,2,4,8,inf")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    result = measure(args.model, args.images, args.steps, args.batch_size, args.epsilons.split(","), args.seed)
    invoked = prog or "python -m " + MODULE
    result = {"command": invoked + " " + " ".join(sys.argv[1:] if argv is None else argv), **result}
    for key, value in result.items():
        print(f"{key:40s} {value}")
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
