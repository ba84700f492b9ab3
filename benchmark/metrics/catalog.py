"""The suite's metrics: one class each, with the keys it declares (``eval.metrics`` names).

Importing this module registers them. Their computations live in the sibling modules
(fidelity, alignment, concept, memorization, detection) and are imported inside
``__call__``, so that reading the declarations (the report, W&B set-up) loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

# declared_keys is re-exported: imported from here, it is complete (every metric below registered).
from benchmark.metrics.base import (Metric, MetricKey, declared_keys, register_metric,  # noqa: F401
                                   register_stage_keys)

if TYPE_CHECKING:  # annotations only
    from benchmark.data.types import BenchmarkDataset, EvalPrompt
    from benchmark.metrics.context import EvalContext
    from benchmark.sampling.generations import Generations

# Prompt groups of memorization sets: EvalPrompt.memorized is True / False (None elsewhere).
GROUPS = (("memorized", True), ("control", False))


def prompt_groups(gen: Generations, prompts: list[EvalPrompt]) -> dict[str, list[int]]:
    """Image positions of memorized and of control prompts; a group without images is absent."""
    groups = {}
    for label, flag in GROUPS:
        sel = [k for k, i in enumerate(gen.prompt_index) if prompts[i].memorized is flag]
        if sel:
            groups[label] = sel
    return groups


@register_metric
class Fidelity(Metric):
    """FID and KID (clean-fid) between the generations and the dataset's held-out split."""

    name = "fidelity"
    keys = (MetricKey("eval/fid", False, "Frechet distance of generated to held-out image features",
                      reads_private_data=True),
            MetricKey("eval/kid", False, "kernel (MMD^2, cubic polynomial) distance, mean over 100 subsets",
                      reads_private_data=True))

    def __call__(self, gen, data, context):
        from benchmark.metrics import fidelity

        g = fidelity.folder_features(gen.folder, context.fid_features, context.device)
        r = fidelity.image_features(data.heldout.images, context.fid_features, context.device)
        subset = min(context.eval.kid_subset_size, len(g), len(r))
        return {f"eval/{k}": v for k, v in fidelity.fid_kid(g, r, subset, context.seed).items()}


@register_metric
class ClipScore(Metric):
    """CLIP score against each image's original prompt (placeholder removed), overall and per group."""

    name = "clip_score"
    keys = tuple(MetricKey(f"eval/{group}clip_score", True, f"mean 100 * max(cos, 0) of image and prompt{what}")
                 for group, what in (("", ""), ("memorized_", ", memorized prompts"), ("control_", ", control prompts")))

    def skip_reason(self, gen, data, context) -> Optional[str]:
        if context.clip_source is None:
            return f"model {context.model.name!r} has no CLIP model: set model.clip_model (a hub id or folder)"
        return None

    def __call__(self, gen, data, context):
        from benchmark.metrics.alignment import clip_score

        original = [data.prompts[i].text("") for i in gen.prompt_index]  # alignment with the prompt's content
        clip = context.clip
        out = {"eval/clip_score": clip_score(gen.images, original, lambda: clip, device=context.device)}
        # Memorization sets: alignment with the ORIGINAL prompt, per group (mitigation must keep it).
        for label, sel in prompt_groups(gen, data.prompts).items():
            out[f"eval/{label}_clip_score"] = clip_score(gen.images[sel], [original[k] for k in sel], lambda: clip,
                                                         device=context.device)
        return out


# The judge's heads (benchmark.world.architectures.AttributeClassifier.HEADS; a test checks the two agree).
JUDGED_ATTRIBUTES = ("shape", "colour", "fill", "background")


@register_metric
class Concept(Metric):
    """Offline world only: the judge's accuracy on prompted attributes, and the private- and proxy-style rates."""

    name = "concept"
    keys = (*(MetricKey(f"eval/accuracy_{a}", True, f"fraction of images with the prompted {a} (judge)")
              for a in JUDGED_ATTRIBUTES),
            MetricKey("eval/private_style_rate", True, "fraction of images in the private style (judge)"),
            MetricKey("eval/proxy_style_rate", True, "fraction of images in the public proxy style (judge)"))

    def skip_reason(self, gen, data, context) -> Optional[str]:
        if context.world_dir is None:
            return f"model {context.model.name!r} is not an offline world: there is no attribute judge"
        return None

    def __call__(self, gen, data, context):
        from benchmark.metrics.concept import attribute_accuracy

        expected = [data.prompts[i].attributes for i in gen.prompt_index]
        accuracy = attribute_accuracy(gen.images.to(context.device), expected, context.judge)
        return {f"eval/{k}": v for k, v in accuracy.items()}


MEMORIZATION_SETS = (("adapt_set", "the whole adaptation set"), ("memorized", "memorized prompts' ground truth"),
                     ("control", "control prompts' ground truth"),
                     ("memorized_region", "memorized prompts' ground truth, in dataset.copy_region only"),
                     ("control_region", "control prompts' ground truth, in dataset.copy_region only"))


@register_metric
class Memorization(Metric):
    """Copy similarity (SSCD or the world's pixel descriptor) to the adaptation set and to each prompt's own images."""

    name = "memorization"
    keys = tuple(key for group, what in MEMORIZATION_SETS for key in (
        MetricKey(f"eval/{group}_similarity_mean", False, f"mean max copy similarity to {what}", "cosine",
                  reads_private_data=group == "adapt_set"),
        MetricKey(f"eval/{group}_fraction_copied", False, f"fraction of images above the copy threshold ({what})",
                  reads_private_data=group == "adapt_set")))

    def __call__(self, gen, data, context):
        from benchmark.metrics.memorization import crop_region, max_similarity, memorization_summary

        prompts, detector, threshold = data.prompts, context.copy_detector, context.copy_threshold
        generated, references = gen.images.to(context.device), data.adapt.images.to(context.device)
        # Against the whole adaptation (private) set: does the model reproduce a private image?
        out = memorization_summary(max_similarity(generated, references, detector), threshold, "eval/adapt_set")
        # Against each prompt's own ground truth, split by memorized / control prompts.
        with_truth = [k for k, i in enumerate(gen.prompt_index) if prompts[i].ground_truth]
        if not with_truth:
            return out
        cands = [prompts[gen.prompt_index[k]].ground_truth for k in with_truth]
        # Local memorization: the same comparison inside the dataset's copy region only.
        region = data.config.copy_region
        views = {"": (generated, references)}
        if region is not None:
            views["_region"] = (crop_region(generated, region), crop_region(references, region))
        for suffix, (gens, refs) in views.items():
            own = max_similarity(gens[with_truth], refs, detector, cands)
            for label, flag in GROUPS:
                sel = [j for j, k in enumerate(with_truth) if prompts[gen.prompt_index[k]].memorized is flag]
                if sel:
                    out.update(memorization_summary(own[sel], threshold, f"eval/{label}{suffix}"))
        return out


@register_metric
class Detection(Metric):
    """ROC AUC of the first-step noise magnitude m_T, memorized vs control prompts (one score per prompt);
    beside it the AUC of Bright Ending's masked m_T where the guidance captured BE masks (plain CFG does)."""

    name = "detection"
    keys = (MetricKey("eval/detection_auc", True, "AUC of m_T separating memorized from control prompts"),
            MetricKey("eval/detection_magnitude_memorized", None, "mean m_T of memorized prompts"),
            MetricKey("eval/detection_magnitude_control", None, "mean m_T of control prompts"),
            MetricKey("eval/detection_masked_auc", True,
                      "AUC of the BE-masked m_T (end-token attention mask) separating memorized from control prompts"),
            MetricKey("eval/detection_masked_magnitude_memorized", None, "mean BE-masked m_T of memorized prompts"),
            MetricKey("eval/detection_masked_magnitude_control", None, "mean BE-masked m_T of control prompts"))

    def skip_reason(self, gen, data, context) -> Optional[str]:
        if "first_step_magnitude" not in gen.stats:
            return "the guidance reported no first-step magnitude"
        return None

    def __call__(self, gen, data, context):
        from benchmark.metrics.detection import detection_metrics

        memorized = [p.memorized for p in data.prompts]
        out = detection_metrics(gen.stats["first_step_magnitude"], gen.prompt_index, memorized)
        if "first_step_masked_magnitude" in gen.stats:  # computed from the same step-0 predictions
            out.update(detection_metrics(gen.stats["first_step_masked_magnitude"], gen.prompt_index, memorized,
                                         prefix="eval/detection_masked"))
        return out


@register_metric
class Trigger(Metric):
    """How often a mitigating guidance triggered, overall and per prompt group."""

    name = "trigger"
    keys = (MetricKey("eval/trigger_fraction", None, "fraction of generations where the mitigation triggered"),
            MetricKey("eval/memorized_trigger_fraction", True, "trigger fraction on memorized prompts"),
            MetricKey("eval/control_trigger_fraction", False, "trigger fraction on control prompts"))

    def skip_reason(self, gen, data, context) -> Optional[str]:
        if "triggered" not in gen.stats:
            return "the guidance reported no trigger decisions"
        return None

    def __call__(self, gen, data, context):
        trig = gen.stats["triggered"].float()
        out = {"eval/trigger_fraction": float(trig.mean())}
        for label, sel in prompt_groups(gen, data.prompts).items():
            out[f"eval/{label}_trigger_fraction"] = float(trig[sel].mean())
        return out



# --- the membership-inference stage (eval.membership_inference; benchmark/metrics/membership_stage.py)

MIA_ATTACKS = (("loss", "denoising-loss threshold attack"),
               ("loss_calibrated", "reference-calibrated loss attack (pretrained loss minus adapted loss)"),
               ("similarity", "generation-similarity attack"))
MIA_FPRS = (("1pct", "1%"), ("0p1pct", "0.1%"))


def _mia_attack_keys(attack: str, what: str) -> tuple[MetricKey, ...]:
    # Every key reads the private members and held-out images: evaluation only, never
    # covered by the release's (epsilon, delta) even though it is named privacy/*.
    key = lambda name, better, text, unit="": MetricKey(f"privacy/mia_{attack}_{name}", better,  # noqa: E731
                                                        f"{what}: {text}", unit, reads_private_data=True)
    keys = [key("auc", False, "ROC AUC, members vs held-out (0.5: chance)"),
            key("auc_low", None, "DeLong 95% interval of the AUC, low end"),
            key("auc_high", None, "DeLong 95% interval of the AUC, high end")]
    for suffix, fpr in MIA_FPRS:
        keys += [key(f"tpr_at_fpr_{suffix}", False, f"TPR at empirical FPR <= {fpr}"),
                 key(f"tpr_at_fpr_{suffix}_low", None, f"Clopper-Pearson 95% interval of the TPR at FPR {fpr}, low"),
                 key(f"tpr_at_fpr_{suffix}_high", None, f"Clopper-Pearson 95% interval of the TPR at FPR {fpr}, high"),
                 key(f"fpr_at_fpr_{suffix}", None, f"the empirical FPR of the threshold chosen for {fpr}"),
                 key(f"dp_bound_at_fpr_{suffix}", None, f"DP runs: e^epsilon FPR + delta at that FPR (max TPR)")]
    return tuple(keys)


MIA_KEYS = register_stage_keys("membership_inference", (
    *(k for attack, what in MIA_ATTACKS for k in _mia_attack_keys(attack, what)),
    MetricKey("privacy/mia_exceeds_dp_bound", False, "DP runs: 1.0 if an attack's TPR (lower CP end) exceeds "
              "the (epsilon, delta) bound (a bug or a broken guarantee), else 0.0", reads_private_data=True),
    MetricKey("privacy/mia_num_members", None, "member candidates (the adaptation images)", "images",
              reads_private_data=True),
    MetricKey("privacy/mia_num_nonmembers", None, "non-member candidates (held-out images)", "images",
              reads_private_data=True),
))
