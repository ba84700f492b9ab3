"""``guidance=prss``: Prompt Re-anchoring (PR) and Semantic Search (SS) against memorization.

Chen et al., "Enhancing Privacy-Utility Trade-offs to Mitigate Memorization in Diffusion
Models" (CVPR 2025); equations as in METHODS.md (from the official code):

- **SS** (first step): the original prompt's magnitude ``m_T``; at or below
  ``lambda_ss`` the prompt is sampled with plain CFG, bit for bit as ``method=none``
  samples it. Otherwise PRSS triggers and picks, among the candidates
  ``[original, *paraphrases]``, the first paraphrase at or below ``lambda_ss`` or the
  arg-min of all candidates if none is.
- **PR** (every step while triggered): re-anchor the chosen prompt ``e_ss`` on the
  original ``e_p`` with a guidance split ``s_pr`` that grows with ``m`` from plain CFG
  (``m = lambda_pr``) to full re-anchoring (``m >= tau``).

Ablations: ``semantic_search=false`` (PR only: ``e_ss`` is the first paraphrase, no
search **[ours]**: PR needs some second prompt) and ``prompt_reanchoring=false`` (SS only:
plain CFG with ``e_ss``). Paraphrase candidates come from the dataset or, **[ours]**,
from a nearest-neighbour search over a caption pool by pooled text-encoder embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Optional, Union

import torch
import torch.nn.functional as F

from benchmark.config import ConfigError, SamplerConfig
from benchmark.data.types import DatasetError
from benchmark.guidance.base import Calibration, SamplingContext
from benchmark.guidance.calibration import ThresholdedGuidance
from benchmark.sampling.plan import SampleItem
from benchmark.utils.checks import check_positive
from benchmark.sampling.sampler import (Guidance, GuidanceInputs, batched_predictions, cfg_predictions, combine,
                                        global_magnitude, noise_magnitude)


def prompt_reanchoring(eps_u: torch.Tensor, eps_p: torch.Tensor, eps_ss: torch.Tensor, s: float,
                       lambda_pr: float, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PR's noise estimate and the per-sample magnitude ``m = ||eps(e_ss) - eps(∅)||``.

    ``m <= lambda_pr``: plain CFG with ``e_ss``. Else, ``c = (s lambda_pr - tau)/(s - 1)``,
    ``s_pr = min(s (m - c)/(tau - c), s)`` and
    ``eps(e_p) + s_pr (eps(e_ss) - eps(e_p)) + (s - s_pr)(eps(e_ss) - eps(∅))``.
    """
    m = noise_magnitude(eps_ss, eps_u)
    c = (s * lambda_pr - tau) / (s - 1)
    s_pr = torch.clamp(s * (m - c) / (tau - c), max=s).view(-1, *[1] * (eps_u.dim() - 1)).to(eps_u.dtype)
    reanchored = eps_p + s_pr * (eps_ss - eps_p) + (s - s_pr) * (eps_ss - eps_u)
    cfg = combine(eps_u, eps_ss, s)
    keep = (m <= lambda_pr).view(-1, *[1] * (eps_u.dim() - 1))
    return torch.where(keep, cfg, reanchored), m


def select_candidate(magnitudes: torch.Tensor, lambda_ss: float) -> int:
    """SS rule over ``[original, *paraphrases]``: 0 if the original is at or below ``lambda_ss``;
    else the first paraphrase at or below it; else the arg-min over all candidates."""
    if magnitudes[0] <= lambda_ss:
        return 0
    below = (magnitudes[1:] <= lambda_ss).nonzero()
    if len(below):
        return int(below[0]) + 1
    return int(magnitudes.argmin())


class PRSSGuidance(Guidance):
    """PRSS inside the sampler loop; untriggered images get exactly the ``none`` computation."""

    name = "prss"

    def __init__(self, encode: Callable[[list[str]], torch.Tensor], candidates: Callable[[SampleItem], list[str]],
                 lambda_ss: float, lambda_pr: float, tau: float, semantic_search: bool, prompt_reanchoring: bool,
                 candidate_batch_size: int, candidate_chunk: int, ss_magnitude: Callable = global_magnitude):
        # ss_magnitude scores the original and the candidates at the first step (SS and the trigger),
        # (eps_c, eps_u, rows) -> (B,); Bright Ending passes its masked one. PR's per-step magnitude
        # stays global, as in the official PRSS + BE code.
        self.encode, self.candidates, self.ss_magnitude = encode, candidates, ss_magnitude
        self.lambda_ss, self.lambda_pr, self.tau = lambda_ss, lambda_pr, tau
        self.ss, self.pr = semantic_search, prompt_reanchoring
        self.candidate_batch_size, self.candidate_chunk = candidate_batch_size, candidate_chunk

    def start(self, items: list[SampleItem]) -> None:
        self.items, self.stats = items, {}
        self.triggered_rows = torch.zeros(0, dtype=torch.long)
        self.ss_embeds = None

    def _combine(self, eps_u, eps_p, eps_ss, s):
        if self.pr:
            eps, m = prompt_reanchoring(eps_u, eps_p, eps_ss, s, self.lambda_pr, self.tau)
            self.stats["reanchored_steps"][self.triggered_rows] += (m > self.lambda_pr).long().cpu()
            return eps
        return combine(eps_u, eps_ss, s)

    def noise_prediction(self, unet, x: GuidanceInputs) -> torch.Tensor:
        s = x.guidance_scale
        if x.step_index == 0:
            return self._first_step(unet, x)
        rows = self.triggered_rows
        if len(rows) == 0:  # the very call `none` makes
            return combine(*cfg_predictions(unet, x.latents, x.timestep, x.cond, x.uncond), s)
        if self.pr:  # one call: ∅ and e_p for every image, e_ss for the triggered ones
            eps_u, eps_p, eps_ss = batched_predictions(
                unet, x.timestep, [(x.latents, x.uncond), (x.latents, x.cond), (x.latents[rows], self.ss_embeds)])
        else:  # SS only: e_ss simply replaces e_p, no third prediction needed
            cond = x.cond.clone()
            cond[rows] = self.ss_embeds
            eps_u, eps_p = cfg_predictions(unet, x.latents, x.timestep, cond, x.uncond)
            eps_ss = eps_p[rows]
        eps = combine(eps_u, eps_p, s)
        eps[rows] = self._combine(eps_u[rows], eps_p[rows] if self.pr else eps_ss, eps_ss, s)
        return eps

    def _first_step(self, unet, x: GuidanceInputs) -> torch.Tensor:
        s, b = x.guidance_scale, len(x.latents)
        eps_u, eps_p = cfg_predictions(unet, x.latents, x.timestep, x.cond, x.uncond)
        m0 = self.ss_magnitude(eps_p, eps_u)
        active = self.ss or self.pr
        triggered = (m0 > self.lambda_ss).cpu() & active
        self.stats = {"first_step_magnitude": m0.cpu(), "triggered": triggered,
                      "chosen_candidate": torch.zeros(b, dtype=torch.long),
                      "chosen_magnitude": m0.cpu().clone(), "reanchored_steps": torch.zeros(b, dtype=torch.long)}
        eps = combine(eps_u, eps_p, s)
        rows = triggered.nonzero().flatten()
        self.triggered_rows = rows
        if len(rows) == 0:
            return eps
        cands = {}
        for r in rows.tolist():
            cands[r] = self.candidates(self.items[r])
            if not cands[r]:
                raise DatasetError(f"PRSS triggered on prompt {self.items[r].text!r} (m_T={float(m0[r]):.3g} > "
                                   f"lambda_ss={self.lambda_ss:.3g}) but its paraphrase list is empty")
            if not self.ss:
                cands[r] = cands[r][:1]
        # Candidates are evaluated in rounds of `candidate_chunk` per prompt, all triggered prompts
        # in one batched call per round; a prompt stops at its first candidate at or below
        # lambda_ss (the SS rule never looks further), so only prompts still unresolved continue.
        mags = {r: [float(m0[r])] for r in cands}
        eps_of, emb_of = {}, {}
        chunk = self.candidate_chunk if self.ss else 1
        pending = list(cands)
        done = 0
        while pending:
            texts, owner = [], []
            for r in pending:
                new = cands[r][done:done + chunk]
                texts += new
                owner += [r] * len(new)
            embeds = self.encode(texts).to(x.cond)
            owner_t = torch.tensor(owner)
            eps_c = torch.cat([
                batched_predictions(unet, x.timestep, [(x.latents[owner_t[i:i + self.candidate_batch_size]],
                                                        embeds[i:i + self.candidate_batch_size])])[0]
                for i in range(0, len(texts), self.candidate_batch_size)])
            m_c = self.ss_magnitude(eps_c, eps_u[owner_t], owner_t).cpu()
            for j, r in enumerate(owner):
                k = len(mags[r])
                mags[r].append(float(m_c[j]))
                eps_of[r, k], emb_of[r, k] = eps_c[j], embeds[j]
            done += chunk
            pending = [r for r in pending if done < len(cands[r]) and min(mags[r][1:]) > self.lambda_ss]
        chosen_eps, chosen_embeds = [], []
        for r in rows.tolist():
            k = select_candidate(torch.tensor(mags[r]), self.lambda_ss) if self.ss else 1
            self.stats["chosen_candidate"][r] = k
            self.stats["chosen_magnitude"][r] = mags[r][k]
            if k == 0:  # the original is the arg-min: anchor on itself
                chosen_eps.append(eps_p[r])
                chosen_embeds.append(x.cond[r])
            else:
                chosen_eps.append(eps_of[r, k])
                chosen_embeds.append(emb_of[r, k])
        self.ss_embeds = torch.stack(chosen_embeds)
        eps_ss = torch.stack(chosen_eps)
        eps[rows] = self._combine(eps_u[rows], eps_p[rows], eps_ss, s)
        return eps


class CaptionPoolSearch:
    """**[ours]** Paraphrase candidates without an LLM: a prompt's nearest captions in a pool,
    by cosine similarity of the text encoder's pooled embedding (the prompt itself excluded)."""

    def __init__(self, backbone, pool: list[str], k: int, batch_size: int = 256):
        self.backbone, self.pool, self.k = backbone, list(dict.fromkeys(pool)), k
        self.embeds = torch.cat([self.embed(self.pool[i:i + batch_size]) for i in range(0, len(self.pool), batch_size)])
        self.cache: dict[str, list[str]] = {}

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        enc = self.backbone.text_encoder
        ids = self.backbone.tokenize(texts).to(next(enc.parameters()).device)
        out = enc(ids)
        pooled = out.pooler_output if getattr(out, "pooler_output", None) is not None else out[0].mean(1)
        return F.normalize(pooled.float(), dim=-1).cpu()

    def __call__(self, prompt: str) -> list[str]:
        if prompt not in self.cache:
            sims = self.embed([prompt]) @ self.embeds.T
            order = sims[0].argsort(descending=True).tolist()
            norm = " ".join(prompt.split()).lower()
            self.cache[prompt] = [self.pool[j] for j in order if " ".join(self.pool[j].split()).lower() != norm][:self.k]
        return self.cache[prompt]


@dataclass
class PRSS(ThresholdedGuidance):
    """PRSS configuration (``conf/guidance/prss.yaml``); thresholds: see ``guidance.calibration``."""

    semantic_search: bool
    prompt_reanchoring: bool
    lambda_ss: Union[float, str]
    lambda_pr: Union[float, str]
    tau: Union[float, str]
    paraphrases: str  # dataset | nearest
    num_paraphrases: int
    caption_pool: Optional[Union[list, str]]
    candidate_batch_size: int
    candidate_chunk: int

    # Official SD v1.4 values (METHODS.md) and the offline world's quantile specs.
    AUTO: ClassVar = (("lambda_ss", 1.0, "q0.95"), ("lambda_pr", 3.0, "q0.99"), ("tau", 5.0, "2q0.99"))
    EVERY_STEP: ClassVar = ("lambda_pr", "tau")  # compared with e_ss's magnitude at every step

    def check(self, sampler: SamplerConfig) -> None:
        if self.prompt_reanchoring and float(sampler.guidance_scale) <= 1:
            raise ConfigError(f"guidance=prss with prompt_reanchoring needs eval.sampler.guidance_scale > 1 "
                              f"(PR divides by s - 1), got {sampler.guidance_scale}")
        if self.paraphrases not in ("dataset", "nearest"):
            raise ConfigError(f"guidance.paraphrases must be 'dataset' or 'nearest', got {self.paraphrases!r}")
        for key in ("num_paraphrases", "candidate_batch_size", "candidate_chunk"):
            check_positive(getattr(self, key), f"guidance.{key}", integer=True)
        super().check(sampler)

    def check_thresholds(self, t: dict[str, float]) -> None:
        if self.prompt_reanchoring and "lambda_pr" in t and "tau" in t and t["lambda_pr"] >= t["tau"]:
            raise ConfigError(f"guidance.lambda_pr ({self.lambda_pr} -> {t['lambda_pr']:.4g}) must be below "
                              f"guidance.tau ({self.tau} -> {t['tau']:.4g}): PR interpolates between them")

    def caption_pool_list(self, ctx: SamplingContext) -> list[str]:
        if self.caption_pool is None:
            return [p.text() for p in ctx.data.prompts]
        if isinstance(self.caption_pool, str):
            path = Path(self.caption_pool).expanduser()
            if not path.is_file():
                raise ConfigError(f"guidance.caption_pool={self.caption_pool!r}: no such file (one caption per line)")
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return [str(c) for c in self.caption_pool]

    def guidance(self, ctx: SamplingContext, calibration: Calibration) -> Guidance:
        return self.rule(ctx, calibration)(global_magnitude)

    def rule(self, ctx: SamplingContext, calibration: Calibration) -> Callable[[Callable], PRSSGuidance]:
        """The per-step rule for a given SS magnitude function (the candidate search is built once)."""
        k = self.num_paraphrases
        if self.paraphrases == "nearest":
            search = CaptionPoolSearch(ctx.backbone, self.caption_pool_list(ctx), k)
            candidates = lambda item: search(item.text)  # noqa: E731
        else:
            if not any(p.paraphrases for p in ctx.data.prompts):
                raise DatasetError(f"guidance=prss with paraphrases=dataset needs prompts with paraphrases; dataset "
                                   f"{ctx.data.name!r} has none: use guidance.paraphrases=nearest")
            candidates = lambda item: list(item.paraphrases)[:k]  # noqa: E731
        return lambda magnitude: PRSSGuidance(
            ctx.backbone.encode_prompts, candidates, calibration["lambda_ss"], calibration["lambda_pr"],
            calibration["tau"], self.semantic_search, self.prompt_reanchoring, self.candidate_batch_size,
            self.candidate_chunk, magnitude)
