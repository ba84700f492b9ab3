"""Mitigation-strength presets: one sweep axis for guidance methods whose knobs differ.

PRSS's knob is ``lambda_ss``, PE's ``target_loss``, GNI's ``scale``: a sweep over
guidances cannot be a Cartesian product of knob values. Instead ``strength=weak|medium|
strong`` (``conf/strength/``) selects, through the defaults list entry
``optional guidance_strength: ${guidance}_${strength}``, the file
``conf/guidance_strength/<guidance>_<strength>.yaml`` that sets that guidance's knob and
records itself in ``strength.preset``. The values are part of the composed config, so
``.hydra/config.yaml`` and the config hash hold exactly what a job used.

A (guidance, strength) pair without a preset file has nothing to run: such a job is
skipped (:func:`missing_preset`), so a sweep holds each point once.
"""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

DEFAULT = "default"  # the guidance's own YAML values; needs no preset


def missing_preset(cfg: DictConfig) -> Optional[str]:
    """Why this job has nothing to run (its guidance has no preset at its strength), else None."""
    strength = cfg.get("strength")
    if strength is None or strength.name == DEFAULT or strength.get("preset") is not None:
        return None
    return (f"guidance {cfg.guidance.name} has no strength preset '{strength.name}': "
            f"no conf/guidance_strength/{cfg.guidance.name}_{strength.name}.yaml")
