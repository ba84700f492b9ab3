"""Evaluate a run's generations: fidelity, alignment, concept accuracy, memorization."""

from __future__ import annotations

from dataclasses import dataclass, field
import tempfile
from pathlib import Path
from typing import Optional

import torch
from PIL import Image

from benchmark.config import EvalConfig, ModelConfig
from benchmark.data.datasets import BenchmarkDataset, EvalPrompt
from benchmark.metrics import alignment, concept, detection, fidelity, memorization
from benchmark.metrics.encoders import ClipImageFeatures, load_clip
from benchmark.sampling.generations import Generations  # noqa: F401


class Evaluator:
    """Holds the encoders for one model (real or world) and computes every metric."""

    def __init__(self, model_cfg: ModelConfig, eval_cfg: EvalConfig, world_dir: Optional[Path], seed: int):
        self.cfg = eval_cfg
        self.seed = seed
        self.device = torch.device("cpu")
        clip_source = model_cfg.clip_model or (world_dir / "clip" if world_dir else None)
        self.clip = load_clip(clip_source) if (clip_source and (eval_cfg.clip_score or eval_cfg.fid)) else None
        self.judge = None
        if world_dir is not None:
            from benchmark.world.build import load_attribute_classifier

            self.judge = load_attribute_classifier(world_dir / "attribute_classifier")
        # FID/KID features: clean-fid's Inception (None), or a CLIP image tower where no
        # Inception weights can be had (the offline world).
        self.fid_features = None
        if not model_cfg.inception and self.clip is not None:
            processor = self.clip[1].image_processor
            self.fid_features = ClipImageFeatures(self.clip[0], processor.image_mean, processor.image_std)
        self.copy_detector = memorization.load_copy_detector(model_cfg.copy_detector)
        self.copy_threshold = eval_cfg.memorization_threshold or model_cfg.copy_threshold

    def __call__(self, gen: Generations, data: BenchmarkDataset, prompts: list[EvalPrompt]) -> dict[str, float]:
        out: dict[str, float] = {"eval/num_images": len(gen.texts)}
        if self.cfg.fid:
            g = fidelity.folder_features(gen.folder, self.fid_features, self.device)
            r = self.reference_features(data, self.fid_features)
            subset = min(self.cfg.kid_subset_size, len(g), len(r))
            out.update({f"eval/{k}": v for k, v in fidelity.fid_kid(g, r, subset, self.seed).items()})
        if self.cfg.clip_score and self.clip is not None:
            original = [prompts[i].text("") for i in gen.prompt_index]  # alignment with the prompt's content
            out["eval/clip_score"] = alignment.clip_score(gen.images, original, lambda: self.clip)
            # Memorization sets: alignment with the ORIGINAL prompt, per group (mitigation must keep it).
            for label, sel in self.memorization_groups(gen, prompts).items():
                out[f"eval/{label}_clip_score"] = alignment.clip_score(
                    gen.images[sel], [original[k] for k in sel], lambda: self.clip)
        if self.cfg.concept_accuracy and self.judge is not None:
            expected = [prompts[i].attributes for i in gen.prompt_index]
            out.update({f"eval/{k}": v for k, v in concept.attribute_accuracy(gen.images, expected, self.judge).items()})
        if self.cfg.memorization:
            out.update(self.memorization_metrics(gen, data, prompts))
        out.update(self.guidance_metrics(gen, prompts))
        return out

    @staticmethod
    def memorization_groups(gen: Generations, prompts: list[EvalPrompt]) -> dict[str, list[int]]:
        """Image positions of memorized and of control prompts (empty on other datasets)."""
        groups = {}
        for label, flag in (("memorized", True), ("control", False)):
            sel = [k for k, i in enumerate(gen.prompt_index) if prompts[i].memorized is flag]
            if sel:
                groups[label] = sel
        return groups

    def guidance_metrics(self, gen: Generations, prompts: list[EvalPrompt]) -> dict[str, float]:
        """Detection AUC from the first-step magnitudes; how often a mitigation triggered, per group."""
        out: dict[str, float] = {}
        memorized = [p.memorized for p in prompts]
        if "first_step_magnitude" in gen.stats:
            out.update(detection.detection_metrics(gen.stats["first_step_magnitude"], gen.prompt_index, memorized))
        if "triggered" in gen.stats:
            trig = gen.stats["triggered"].float()
            out["eval/trigger_fraction"] = float(trig.mean())
            for label, sel in self.memorization_groups(gen, prompts).items():
                out[f"eval/{label}_trigger_fraction"] = float(trig[sel].mean())
        return out

    def reference_features(self, data: BenchmarkDataset, feats):
        """Features of the held-out split at the model's resolution (a temporary folder,
        deleted at once: these images are the target set's, never a run output)."""
        with tempfile.TemporaryDirectory(prefix="heldout-") as tmp:
            for i, image in enumerate(data.heldout.images):
                Image.fromarray(image.permute(1, 2, 0).numpy()).save(Path(tmp) / f"{i:05d}.png")
            return fidelity.folder_features(Path(tmp), feats, self.device)

    def memorization_metrics(self, gen: Generations, data: BenchmarkDataset, prompts: list[EvalPrompt]):
        threshold = self.copy_threshold
        out = {}
        # Against the whole adaptation (private) set: does the model reproduce a private image?
        sims = memorization.max_similarity(gen.images, data.adapt.images, self.copy_detector)
        out.update(memorization.memorization_summary(sims, threshold, "eval/adapt_set"))
        # Against each prompt's own ground truth, split by memorized / control prompts.
        with_truth = [k for k, i in enumerate(gen.prompt_index) if prompts[i].ground_truth]
        if with_truth:
            cands = [prompts[gen.prompt_index[k]].ground_truth for k in with_truth]
            own = memorization.max_similarity(gen.images[with_truth], data.adapt.images, self.copy_detector, cands)
            for label, flag in (("memorized", True), ("control", False)):
                sel = [j for j, k in enumerate(with_truth) if prompts[gen.prompt_index[k]].memorized is flag]
                if sel:
                    out.update(memorization.memorization_summary(own[sel], threshold, f"eval/{label}"))
        return out
