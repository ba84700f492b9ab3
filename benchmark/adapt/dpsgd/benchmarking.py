"""Cost of a DP-SGD step relative to the same non-private step, for dpsgd_ti and dpsgd_lora.

For each method (``ti``: the placeholder row; ``lora``: LoRA r=4 on the UNet attention
projections) and each Opacus grad-sample mode (``hooks``, ``ghost``, ``functorch``), one
optimiser step of :class:`benchmark.adapt.dpsgd.module.DPSGDModule` on a fixed batch
(forward, per-example gradients, clipping, noise, AdamW) is timed against the same
module without DP (``dp=None``: plain backward + AdamW, on its own copy of the model,
free of Opacus' hooks). Each configuration runs in its own subprocess so that its peak
memory is its own: peak RSS growth over the RSS just before the first step (sampled
every millisecond), i.e. what the steps add on top of the loaded model and data. Step
time is the median of ``--steps`` steps after ``--warmup``.

    python scripts/benchmark_dpsgd.py [--model builtin:tiny] [--batch 8] [--steps 20] [--out results/dpsgd_overhead]

Targets (issue 4): DP-SGD TI step <= 1.5x non-private, DP-SGD LoRA step <= 2x.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

MODULE = "benchmark.adapt.dpsgd.benchmarking"  # not __name__: that is "__main__" under python -m

MODES = ("hooks", "ghost", "functorch")
METHODS = ("ti", "lora")
TARGETS = {"ti": 1.5, "lora": 2.0}
_PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # the directory holding benchmark/


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Peak resident memory while the block runs, sampled by a thread."""

    def __enter__(self):
        self.base = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def measure(method: str, mode: str, model: str, batch: int, steps: int, warmup: int) -> dict:
    """One configuration, in this process: build, warm up, time ``steps`` steps; return its numbers."""
    import torch
    from hydra.utils import instantiate
    from torch.utils.data import default_collate

    from benchmark.adapt.base import RunContext
    from benchmark.adapt.dpsgd.base import LatentPromptDataset
    from benchmark.adapt.dpsgd.module import Denoiser, DPSGDModule
    from benchmark.adapt.dpsgd.opacus_glue import DPSettings
    from benchmark.adapt.textual_inversion import TemplatePromptDataset
    from benchmark.config import compose_config, validate_config
    from benchmark.datasets import load_dataset
    from benchmark.models.backbone import load_backbone

    torch.manual_seed(0)
    # dataset tiny_style: 32 adaptation images; the method's settings come from its YAML.
    cfg = compose_config(["logger=none", f"method=dpsgd_{method}", *(["method.rank=4"] if method == "lora" else [])])
    run = validate_config(cfg)
    backbone = load_backbone(dataclasses.replace(run.model, name="bench", pretrained=model, resolution=32))
    data = load_dataset(run.dataset, 32)
    for p in list(backbone.text_encoder.parameters()) + list(backbone.unet.parameters()):
        p.requires_grad_(False)
    impl = instantiate(cfg.method, _convert_="all")
    ctx = RunContext(Path("/tmp"), 0, run.privacy, run.strategy, lambda **kw: None)
    impl.prepare(backbone, data, ctx)
    n = len(data.adapt)
    dataset = LatentPromptDataset(TemplatePromptDataset(backbone, data, ["a painting in the style of {}"],
                                                        [impl.placeholder_token(data)], [0] * n, 0))
    mu, sd, ids = default_collate([dataset[i % n] for i in range(batch)])
    per_epoch = max(1, -(-n // batch))
    dp = DPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=1.0 / per_epoch, grad_sample_mode=mode,
                    mechanism_seed=0)
    denoiser = Denoiser(backbone.text_encoder, backbone.unet)
    # The baseline steps its own copy of the model: Opacus puts hooks on the layers it wraps,
    # and even disabled hooks cost a Python call per layer.
    plain = DPSGDModule(copy.deepcopy(denoiser), backbone.scheduler, dataset, batch_size=batch, learning_rate=1e-3,
                        dp=None)
    plain.setup("fit")
    private = DPSGDModule(denoiser, backbone.scheduler, dataset, batch_size=batch, learning_rate=1e-3, dp=dp)
    private.setup("fit")

    def step(module) -> float:
        noisy, t, target = module.draws((mu, sd, ids))
        start = time.perf_counter()
        module.step_on(noisy, t, ids, target, module.dp_optimizer)
        return time.perf_counter() - start

    # Memory: the plain steps first, then the DP steps, both against the RSS before any step.
    base = _rss_mb()
    with PeakRSS() as plain_mem:
        for _ in range(warmup):
            step(plain)
    with PeakRSS() as dp_mem:
        for _ in range(warmup):
            step(private)
    # Time: DP and plain steps alternate, so load from other processes hits both alike.
    times = {"plain": [], "dp": []}
    for _ in range(steps):
        times["dp"].append(step(private))
        times["plain"].append(step(plain))
    trainable = sum(p.numel() for p in private.trainable_parameters())
    return {"method": method, "mode": mode, "batch": batch, "trainable_parameters": trainable,
            "plain_step_s": statistics.median(times["plain"]), "dp_step_s": statistics.median(times["dp"]),
            "time_ratio": round(statistics.median(d / p for d, p in zip(times["dp"], times["plain"])), 3),
            "plain_peak_rss_growth_mb": round(plain_mem.peak - base, 1),
            "dp_peak_rss_growth_mb": round(dp_mem.peak - base, 1)}


def measure_in_subprocess(method: str, mode: str, args: argparse.Namespace) -> dict:
    """:func:`measure` in a fresh interpreter (its own peak memory); ``{"error": ...}`` if it failed."""
    cmd = [sys.executable, "-m", MODULE, "--child", method, mode, "--model", args.model, "--batch",
           str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    path = os.pathsep.join([str(_PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    if res.returncode != 0 or not line:
        return {"method": method, "mode": mode, "error": res.stderr.strip().splitlines()[-1:]}
    r = json.loads(line[0][len("RESULT "):])
    r["memory_ratio"] = round(max(r["dp_peak_rss_growth_mb"], 1.0) / max(r["plain_peak_rss_growth_mb"], 1.0), 3)
    r["target_met"] = r["time_ratio"] <= TARGETS[method]
    return r


def report(meta: dict, rows: list[dict]) -> str:
    """The Markdown report: how it was measured, then one row per (method, mode)."""
    lines = [
        "# DP-SGD step cost relative to the same non-private step",
        "",
        f"Command: `{meta['command']}` (model `{meta['model']}`, batch {meta['batch']}, median of "
        f"{meta['steps']} alternating DP / non-private steps after {meta['warmup']} warm-up steps each; "
        f"{meta['cpus']} CPU cores; DP and non-private steps alternate so that load from other jobs hits both alike).",
        "",
        "A step is forward + backward + optimiser (AdamW) of `DPSGDModule` on a fixed batch; DP adds per-example "
        "gradients, flat clipping to C = 1 and Gaussian noise (z = 1). Non-private: the same module with "
        "`dp=None`, stepping its own copy of the model (no Opacus hooks on its layers). "
        "Memory: peak RSS growth over the RSS before the first step (warm-up steps, sampled every ms); the CPU "
        "allocator keeps freed memory, so the DP figure (measured second) is an upper bound. Targets (issue 4): "
        "TI <= 1.5x, LoRA <= 2x.",
        "",
        "| method | grad-sample mode | DP ms/step | non-private ms/step | time ratio | target | "
        "peak RSS growth DP / non-private (MB) | memory ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['mode']} | failed: {r['error']} | | | | | |")
            continue
        target = meta["targets"][r["method"]]
        lines.append(f"| dpsgd_{r['method']} | {r['mode']} | {r['dp_step_s'] * 1e3:.1f} | "
                     f"{r['plain_step_s'] * 1e3:.1f} | {r['time_ratio']:.2f}x | <= {target}x: "
                     f"{'met' if r['target_met'] else 'NOT met'} | {r['dp_peak_rss_growth_mb']:.0f} / "
                     f"{r['plain_peak_rss_growth_mb']:.0f} | {r['memory_ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None, prog: Optional[str] = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(measure(*args.child, args.model, args.batch, args.steps, args.warmup)))
        return

    rows = []
    for method in args.methods.split(","):
        for mode in args.modes.split(","):
            r = measure_in_subprocess(method, mode, args)
            rows.append(r)
            if "error" in r:
                print(f"{method:5s} {mode:10s} FAILED: {r['error']}")
                continue
            print(f"{method:5s} {mode:10s} DP {r['dp_step_s'] * 1e3:7.1f} ms vs {r['plain_step_s'] * 1e3:7.1f} ms: "
                  f"{r['time_ratio']:.2f}x; peak RSS +{r['dp_peak_rss_growth_mb']:.0f} vs "
                  f"+{r['plain_peak_rss_growth_mb']:.0f} MB", flush=True)

    invoked = prog or "python -m " + MODULE
    meta = {"command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} {invoked} "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "model": args.model, "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "targets": TARGETS}
    table = report(meta, rows)
    print(table)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        Path(args.out + ".md").write_text(table)
        print(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
