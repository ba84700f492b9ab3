"""What every metric of one evaluation shares: the settings, the device and the encoders.

Encoders are loaded on first use (a run that computes no CLIP-based metric never loads
CLIP) and moved to the evaluation device once; every metric then feeds them tensors on
that device and gets Python floats back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from benchmark.config import EvalConfig, ModelConfig


@dataclass
class EvalContext:
    model: ModelConfig
    eval: EvalConfig
    world_dir: Optional[Path]  # the offline world's folder; None for a real model
    seed: int  # KID subsets are drawn from it
    device: torch.device
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)

    def _once(self, name: str, load):
        if name not in self._loaded:
            value = load()
            if isinstance(value, torch.nn.Module):
                value = value.to(self.device)
            self._loaded[name] = value
        return self._loaded[name]

    @property
    def clip_source(self) -> Optional[str | Path]:
        """``model.clip_model``, else the world's own CLIP, else None (no CLIP-based metric)."""
        return self.model.clip_model or (self.world_dir / "clip" if self.world_dir else None)

    @property
    def clip(self):
        """(CLIP model on the device, processor), or None when there is no CLIP to load."""
        from benchmark.metrics.encoders import load_clip

        def load():
            if self.clip_source is None:
                return None
            model, processor = load_clip(self.clip_source)
            return model.to(self.device), processor

        return self._once("clip", load)

    @property
    def fid_features(self) -> Optional[torch.nn.Module]:
        """clean-fid's feature extractor: None means its Inception (real models); the CLIP
        image tower where no Inception weights can be had (``model.inception: false``)."""
        from benchmark.metrics.encoders import ClipImageFeatures

        def load():
            if self.model.inception or self.clip is None:
                return None
            processor = self.clip[1].image_processor
            return ClipImageFeatures(self.clip[0], processor.image_mean, processor.image_std)

        return self._once("fid_features", load)

    @property
    def copy_detector(self) -> torch.nn.Module:
        """SSCD (``model.copy_detector``) or the world's pixel descriptor."""
        from benchmark.metrics.memorization import load_copy_detector

        return self._once("copy_detector", lambda: load_copy_detector(self.model.copy_detector))

    @property
    def copy_threshold(self) -> float:
        """``eval.memorization_threshold``, else the model's ``copy_threshold``."""
        return self.eval.memorization_threshold or self.model.copy_threshold

    @property
    def judge(self):
        """The offline world's attribute judge (only a world model has one)."""
        if self.world_dir is None:
            raise RuntimeError("the attribute judge exists only for an offline-world model")
        from benchmark.world.judge import load_judge

        return self._once("judge", lambda: load_judge(self.world_dir))
