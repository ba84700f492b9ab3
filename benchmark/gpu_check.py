"""GPU check: the real-model path on one NVIDIA GPU, in one run of at most ~5 minutes.

Builds a full-size, random-weight SD v1.5-shaped model (:mod:`benchmark.models.sd_shaped`),
runs ``ti``, ``dpagg_ti`` (8 images), ``dpsgd_ti``, ``dpsgd_lora`` (+ its non-private twin
``lora``) and ``prss`` at 512x512 with ``strategy=gpu`` and ``model.dtype=float16`` through
the suite's own ``run()``, and measures:

- the suite's sampler loop vs diffusers' ``StableDiffusionPipeline`` on the same model,
  prompts, seeds, scheduler and steps (images/s and their ratio; the issue's bar: >= 0.9);
- per-image TI throughput of ``dpagg_ti`` (image-steps/s);
- the DP-SGD LoRA / TI step time relative to the non-private step (bar: LoRA <= 2x), from
  two epoch counts per configuration so set-up cost cancels;
- peak GPU memory of every run.

It prints one table and writes ``results/gpu_check/gpu_check.json``. Any exception, a
module left off the GPU, a wrong dtype or non-finite latents stops it with exit code 1 and
``GPU CHECK FAILED``. Usage::

    python scripts/gpu_check.py                          # on the GPU machine
    python scripts/gpu_check.py --device cpu --reduced   # the same code on a CPU, tiny model, 64 px
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path



class CheckFailed(RuntimeError):
    """A device, dtype or numerical error: the check must not report numbers after it."""


def _write_data(root: Path, resolution: int) -> dict[str, Path]:
    """A single-folder image set (10 images: 8 to adapt, 2 held out) and a PRSS-release memorization set."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    style = root / "style"
    style.mkdir(parents=True)
    lines = []
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(style / f"{i}.png")
        lines.append(json.dumps({"file_name": f"{i}.png", "text": f"a painting of a garden, number {i}"}))
    (style / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    mem = root / "sdv1_500_mem_groundtruth"
    rows = []
    for i in range(4):
        (mem / "gt_images" / str(i)).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(
            mem / "gt_images" / str(i) / "0.png")
        caption = f"the famous poster number {i} of a city at night"
        rows.append(json.dumps({"caption": caption, "index": i, "url": "", **{f"caption{k}": f"{caption}, take {k}"
                                                                              for k in range(1, 26)}}))
    (mem / "sdv1_500_mem_groundtruth_repeated_withss.jsonl").write_text("\n".join(rows) + "\n")
    return {"style": style, "memorized": mem}


def _check_placement(backbone, device, dtype) -> None:
    for name in ("text_encoder", "unet", "vae"):
        module = getattr(backbone, name)
        found = {(p.device.type, p.dtype) for p in module.parameters()}
        if found != {(device.type, dtype)}:
            raise CheckFailed(f"backbone.{name} parameters are on {sorted(map(str, found))}, expected "
                              f"{device.type} / {dtype}")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampler_vs_diffusers(folder: Path, device, dtype, resolution: int, batch: int, steps: int, repeats: int) -> dict:
    """Images/s of the suite's sampler loop and of diffusers' pipeline: same model, seeds, DDIM, steps, CFG 7.5."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from benchmark.config import ModelConfig, SamplerConfig, default_config
    from benchmark.models.backbone import load_backbone
    from benchmark.sampling.plan import items_for_texts
    from benchmark.sampling.sampler import generate_images, initial_noise
    from benchmark.utils.timing import best_interleaved

    bb = load_backbone(default_config(ModelConfig, name="sd15", pretrained=str(folder), resolution=resolution,
                                      dtype=str(dtype).removeprefix("torch.")), device)
    _check_placement(bb, device, dtype)
    pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=dtype, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False).to(device)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    cfg = default_config(SamplerConfig, scheduler="ddim", num_inference_steps=steps, guidance_scale=7.5,
                         batch_size=batch, eta=0.0)
    prompts, seeds = ["a photograph of an astronaut riding a horse"] * batch, list(range(batch))

    def ours():
        images = generate_images(bb, items_for_texts(prompts, seeds), cfg)
        _sync(device)
        return images

    def theirs():
        latents = initial_noise(seeds, bb.latent_shape, device, dtype)
        out = pipe(prompts, height=resolution, width=resolution, num_inference_steps=steps, guidance_scale=7.5,
                   latents=latents, output_type="pt").images
        _sync(device)
        return out

    # Warm-up (kernels, allocator), and a fairness check: same model, seeds and scheduler must
    # give the same pixels (up to half-precision noise), else the two loops do different work.
    ours_images, theirs_images = ours(), theirs()
    if not torch.isfinite(theirs_images).all():
        raise CheckFailed(f"diffusers' pipeline produced non-finite pixels in {dtype} on {device}")
    diff = float((ours_images.float() - (theirs_images.float() * 255).round()).abs().mean())
    best = best_interleaved({"suite": ours, "diffusers": theirs}, repeats)
    del pipe, bb
    return {"batch": batch, "steps": steps, "suite_images_per_s": batch / best["suite"],
            "diffusers_images_per_s": batch / best["diffusers"],
            "sampling_ratio_suite_over_diffusers": best["diffusers"] / best["suite"],
            "mean_abs_pixel_diff_vs_diffusers": diff}


def run_job(name: str, overrides: list[str], out: Path, device) -> dict:
    """One suite job in this process; its metrics plus the job's peak GPU memory."""
    import torch

    from benchmark.config import compose_config
    from benchmark.run import run

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        metrics = run(compose_config(overrides), out / name)
    except Exception as err:
        raise CheckFailed(f"job {name} ({' '.join(overrides)}): {type(err).__name__}: {err}") from err
    _sync(device)
    metrics["wall_s"] = time.perf_counter() - start
    metrics["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    if not (out / name / "metrics.json").is_file():
        raise CheckFailed(f"job {name} wrote no metrics.json")
    return metrics


def _strict(value):
    """Plain JSON: inf/nan (a non-private epsilon) as strings, as metrics.json writes them."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run of the same code)")
    parser.add_argument("--reduced", action="store_true", help="tiny widths at 64 px (CPU dry run)")
    parser.add_argument("--model-dir", type=Path, help="reuse a model built by benchmark.models.sd_shaped")
    parser.add_argument("--steps", type=int, default=4, help="TI / per-image TI steps and sampling steps per job")
    parser.add_argument("--out", type=Path, default=Path("results") / "gpu_check" / "gpu_check.json")
    args = parser.parse_args(argv)

    import torch

    from benchmark.models.sd_shaped import build_sd_shaped

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("GPU CHECK FAILED: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 1
    on_gpu = device.type == "cuda"
    dtype = torch.float16 if on_gpu else torch.float32
    resolution = 64 if args.reduced else 512
    report: dict = {"device": torch.cuda.get_device_name(device) if on_gpu else "cpu", "dtype": str(dtype),
                    "resolution": resolution, "reduced": args.reduced, "torch": torch.__version__}
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
            tmp = Path(tmp)
            folder = args.model_dir
            if folder is None:
                start = time.perf_counter()
                folder = build_sd_shaped(tmp / "sd15", "sd15", reduced=args.reduced, dtype=dtype,
                                         init_device=device)
                report["build_s"] = time.perf_counter() - start
            data = _write_data(tmp / "data", resolution)
            report["sampling"] = sampler_vs_diffusers(folder, device, dtype, resolution, batch=4,
                                                      steps=max(args.steps, 10), repeats=2)
            base = ["model=sd15_shaped", f"model.pretrained={folder}", f"model.resolution={resolution}",
                    f"model.dtype={str(dtype).removeprefix('torch.')}", f"strategy={'gpu' if on_gpu else 'cpu'}",
                    "logger=none", "eval=fast", "eval.num_images=4", "eval.kid_subset_size=2",
                    f"eval.sampler.num_inference_steps={args.steps}", "eval.sampler.batch_size=4"]
            style = ["dataset=artist_artworks", f"dataset.path={data['style']}", "dataset.adapt_split=.",
                     "dataset.heldout_split=random:0.2"]
            dp = ["privacy=dp", "privacy.epsilon=8"]
            jobs = {
                "ti": [*style, "method=ti", f"method.max_steps={args.steps}", "method.batch_size=4"],
                "dpagg_ti": [*style, "method=dpagg_ti", f"method.max_steps={args.steps}", *dp,
                             f"+method.cache_dir={tmp / 'cache'}"],
                "prss": ["method=none", "dataset=sdv1_500_memorized", f"dataset.path={data['memorized']}",
                         "guidance=prss", "eval.metrics=[clip_score,memorization,detection,trigger]",
                         "eval.images_per_prompt=1"],
            }
            for method, extra in (("dpsgd_lora", ["method.rank=4"]), ("lora", ["method.rank=4"]), ("dpsgd_ti", [])):
                for epochs in (1, 3):  # two lengths: (t3 - t1) / (steps3 - steps1) is the step time
                    jobs[f"{method}-e{epochs}"] = [*style, f"method={method}", f"method.epochs={epochs}",
                                                   "method.batch_size=4", *extra, *(dp if method != "lora" else [])]
            jobs["dpsgd_ti_plain-e1"] = [*style, "method=dpsgd_ti", "method.epochs=1", "method.batch_size=4"]
            jobs["dpsgd_ti_plain-e3"] = [*style, "method=dpsgd_ti", "method.epochs=3", "method.batch_size=4"]
            runs = {name: run_job(name, [*base, *extra], tmp / "runs", device) for name, extra in jobs.items()}
    except CheckFailed as err:
        traceback.print_exc()
        print(f"GPU CHECK FAILED: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - any error is a failed check, loudly
        traceback.print_exc()
        print(f"GPU CHECK FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 1

    def step_s(name: str) -> float:
        a, b = runs[f"{name}-e1"], runs[f"{name}-e3"]
        return (b["time/adapt_s"] - a["time/adapt_s"]) / max(b["adapt/steps"] - a["adapt/steps"], 1)

    agg = runs["dpagg_ti"]
    report.update({
        "per_image_ti_image_steps_per_s": agg["adapt/num_images"] * agg["adapt/per_image_steps"]
        / max(agg["adapt/per_image_train_s"], 1e-9),
        "dpsgd_lora_step_s": step_s("dpsgd_lora"), "lora_step_s": step_s("lora"),
        "dpsgd_ti_step_s": step_s("dpsgd_ti"), "ti_plain_step_s": step_s("dpsgd_ti_plain"),
        "suite_sample_stage_images_per_s": runs["ti"]["eval/num_images"] / runs["ti"]["time/sample_s"],
        "peak_gpu_mb": max((r["peak_gpu_mb"] or 0) for r in runs.values()) if on_gpu else None,
        "runs": {k: {key: r.get(key) for key in ("wall_s", "time/adapt_s", "time/sample_s", "time/calibrate_s",
                                                 "adapt/steps", "privacy/epsilon", "peak_gpu_mb")}
                 for k, r in runs.items()},
        "total_s": time.perf_counter() - t0,
    })
    report["dpsgd_lora_step_ratio"] = report["dpsgd_lora_step_s"] / max(report["lora_step_s"], 1e-9)
    report["dpsgd_ti_step_ratio"] = report["dpsgd_ti_step_s"] / max(report["ti_plain_step_s"], 1e-9)
    s = report["sampling"]
    print(f"\nGPU check on {report['device']} ({report['dtype']}, {resolution}px), {report['total_s']:.0f} s")
    print(f"  sampling, suite / diffusers:   {s['sampling_ratio_suite_over_diffusers']:.3f} "
          f"({s['suite_images_per_s']:.2f} vs {s['diffusers_images_per_s']:.2f} images/s; bar >= 0.90)")
    print(f"  same pixels as diffusers:      mean |diff| {s['mean_abs_pixel_diff_vs_diffusers']:.2f} / 255")
    print(f"  per-image TI (dpagg_ti, 8):    {report['per_image_ti_image_steps_per_s']:.2f} image-steps/s")
    print(f"  DP-SGD LoRA step / LoRA step:  {report['dpsgd_lora_step_ratio']:.2f}x (bar <= 2x)")
    print(f"  DP-SGD TI step / plain step:   {report['dpsgd_ti_step_ratio']:.2f}x")
    print(f"  peak GPU memory:               {report['peak_gpu_mb'] or 0:.0f} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_strict(report), indent=1) + "\n")
    print(f"  written: {args.out}")
    return 0

