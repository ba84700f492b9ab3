#!/usr/bin/env python
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

The per-image embeddings go to a temporary owner-only cache that is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.config import compose_config, validate_config  # noqa: E402
from benchmark.data.datasets import load_dataset  # noqa: E402
from benchmark.lightning.factories import make_trainer_factory  # noqa: E402
from benchmark.adapt.base import RunContext  # noqa: E402
from benchmark.adapt.dpagg_ti import DPAggTI, train_per_image_embeddings  # noqa: E402
from benchmark.adapt.textual_inversion import resolve_templates  # noqa: E402
from benchmark.models.backbone import PACKAGED_WORLD, load_backbone  # noqa: E402
from benchmark.utils.io import atomic_write_json  # noqa: E402


def main() -> None:
    default_model = "builtin:tiny" if (PACKAGED_WORLD / "model_index.json").is_file() else "builtin:micro"
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=default_model, help=f"model.pretrained (default here: {default_model})")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--steps", type=int, default=DPAggTI.max_steps, help="TI steps per image (method default)")
    p.add_argument("--batch-size", type=int, default=DPAggTI.batch_size, help="draws per image per step")
    p.add_argument("--epsilons", default="0.5,1,2,4,8,inf")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    overrides = ["model=micro" if args.model == "builtin:micro" else "model=tiny", f"model.pretrained={args.model}",
                 "dataset=tiny_style", f"dataset.world.num_adapt={args.images}", "dataset.world.num_heldout=8",
                 "method=dpagg_ti", f"method.max_steps={args.steps}", f"method.batch_size={args.batch_size}",
                 "privacy=dp", "logger=none", f"seed={args.seed}"]
    run = validate_config(compose_config(overrides))
    data = load_dataset(run.dataset, run.model.resolution)
    method = DPAggTI(max_steps=args.steps, batch_size=args.batch_size)
    templates = resolve_templates(None, data)
    n = len(data.adapt)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_trainer = make_trainer_factory(run.strategy, None, tmp)
        backbone = load_backbone(run.model)
        _, init = backbone.add_placeholder_tokens(["<bench>"], data.config.concept.initializer_token)
        mu, sd = backbone.encode_images(data.adapt.images)

        def per_image(ids: list[int], steps: int = args.steps) -> torch.Tensor:
            return train_per_image_embeddings(
                backbone, mu[ids], sd[ids], [data.adapt.captions[i] for i in ids], ids, templates, init,
                steps=steps, learning_rate=method.learning_rate, batch_size=args.batch_size, seed=args.seed,
                make_trainer=make_trainer)

        per_image([0], steps=2)  # warm-up: first-call costs (allocator, Lightning imports) hit neither side
        start = time.perf_counter()
        batched = per_image(list(range(n)))
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        sequential = torch.cat([per_image([i]) for i in range(n)])
        sequential_s = time.perf_counter() - start

        epsilons = [float(e) for e in args.epsilons.split(",")]
        method.cache_dir = str(tmp / "cache")
        adapt_s, load_s = [], []
        for k, epsilon in enumerate(epsilons):
            start = time.perf_counter()
            backbone = load_backbone(run.model)  # each job of a sweep loads its backbone
            load_s.append(time.perf_counter() - start)
            privacy = type(run.privacy)(epsilon=epsilon, delta=run.privacy.delta, accountant=run.privacy.accountant)
            out = tmp / f"eps{k}"
            out.mkdir()
            ctx = RunContext(out, args.seed, privacy, run.strategy, make_trainer_factory(run.strategy, None, out))
            start = time.perf_counter()
            adaptation = method.adapt(backbone, data, ctx)
            adapt_s.append(time.perf_counter() - start)
            assert adaptation.metrics["adapt/cache_hit"] == int(k > 0)

    single, sweep = adapt_s[0], sum(adapt_s)
    result = {
        "command": "python " + " ".join(sys.argv), "cpus": os.cpu_count(), "torch": torch.__version__,
        "model": args.model, "images": n, "steps_per_image": args.steps, "draws_per_image_per_step": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "batched_per_image_ti_s": round(batched_s, 3),
        "sequential_per_image_ti_s": round(sequential_s, 3),
        "speedup_batched_over_sequential": round(sequential_s / batched_s, 2),
        "max_abs_diff_batched_vs_sequential": float((batched - sequential).abs().max()),
        "epsilons": args.epsilons.split(","),  # strings: JSON has no inf
        "single_epsilon_adapt_s": round(single, 3),
        "sweep_adapt_s": round(sweep, 3),
        "sweep_over_single_adapt": round(sweep / single, 3),
        "sweep_over_single_with_load": round((sweep + sum(load_s)) / (single + load_s[0]), 3),
        "cached_adapt_s_mean": round(sum(adapt_s[1:]) / max(len(adapt_s) - 1, 1), 3),
        "backbone_load_s_mean": round(sum(load_s) / len(load_s), 3),
    }
    for key, value in result.items():
        print(f"{key:40s} {value}")
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
