"""The sampling plan: which prompt and which seed each generated image has.

One fixed seed per image (:func:`image_seed`), so an image depends on its prompt and its
seed only, never on the batch or the rank that drew it. Every piece of per-prompt
information a guidance method may read travels with the image as one typed
:class:`SampleItem`; the same items are written to ``images/index.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from benchmark.data.types import EvalPrompt

# Seeds 700_000 draws past the evaluation seeds of the same run: calibration never sees an
# evaluation draw (a run has far fewer than 700_000 images).
CALIBRATION_OFFSET = 700_000


def image_seed(run_seed: int, i: int) -> int:
    """The seed of draw ``i`` of a run with seed ``run_seed`` (evaluation: ``i`` = image position).

    Runs with different seeds get disjoint seed ranges (a prime stride larger than any
    run's number of draws), so sweeping ``seed`` never reuses an image's noise.
    """
    return int(run_seed) * 1_000_003 + int(i)


def calibration_seed(run_seed: int, i: int) -> int:
    """The seed of calibration draw ``i``: disjoint from every evaluation seed of the run."""
    return image_seed(run_seed, CALIBRATION_OFFSET + i)


@dataclass
class SampleItem:
    """One image to generate, with everything a guidance method may know about its prompt.

    Treated as read-only. (Not a frozen dataclass: Lightning copies the batch field by
    field when it moves it to the device, which a frozen dataclass refuses.)
    """

    index: int  # position in the plan: the image is ``images/{index:05d}.png``
    prompt_index: int  # into the dataset's evaluation prompts
    seed: int
    text: str  # the text sampled (the adaptation's placeholder substituted)
    original: str  # the prompt without the placeholder (alignment is scored against it)
    paraphrases: tuple[str, ...] = ()  # memorization sets: PRSS's candidates
    memorized: Optional[bool] = None  # memorization sets: ground truth of the prompt

    @property
    def file(self) -> str:
        return f"{self.index:05d}.png"


def plan_prompt_indices(num_prompts: int, num_images: int, images_per_prompt: Optional[int]) -> list[int]:
    """The prompt of each image: ``images_per_prompt`` consecutive images per prompt if given,
    else ``num_images`` dealt round-robin over the prompts."""
    if num_prompts <= 0:
        raise ValueError("the dataset has no evaluation prompts to sample")
    if images_per_prompt:
        return [p for p in range(num_prompts) for _ in range(images_per_prompt)]
    return [i % num_prompts for i in range(num_images)]


def sampling_plan(prompts: Sequence[EvalPrompt], num_images: int, images_per_prompt: Optional[int], seed: int,
                  placeholder: str = "") -> list[SampleItem]:
    """The run's images in order; image ``i`` has seed ``image_seed(seed, i)``."""
    order = plan_prompt_indices(len(prompts), num_images, images_per_prompt)
    return [SampleItem(index=i, prompt_index=p, seed=image_seed(seed, i), text=prompts[p].text(placeholder),
                       original=prompts[p].text(""), paraphrases=tuple(prompts[p].paraphrases),
                       memorized=prompts[p].memorized)
            for i, p in enumerate(order)]


def items_for_texts(texts: Sequence[str], seeds: Sequence[int],
                    paraphrases: Optional[Sequence[Sequence[str]]] = None) -> list[SampleItem]:
    """Items for ad-hoc prompts outside a dataset (scripts, calibration, tests); prompt index = position."""
    paraphrases = paraphrases if paraphrases is not None else [()] * len(texts)
    if not len(texts) == len(seeds) == len(paraphrases):
        raise ValueError(f"{len(texts)} texts, {len(seeds)} seeds and {len(paraphrases)} paraphrase lists")
    return [SampleItem(index=i, prompt_index=i, seed=int(s), text=t, original=t, paraphrases=tuple(p))
            for i, (t, s, p) in enumerate(zip(texts, seeds, paraphrases))]
