"""The sampling plan: prompt and seed per image, the typed items, the one seed formula."""

import pytest

from benchmark.data.types import EvalPrompt
from benchmark.sampling.plan import image_seed, items_for_texts, plan_prompt_indices, sampling_plan

PROMPTS = [EvalPrompt("a {} harbor", memorized=True, paraphrases=["a calm port", "a {} bay"]),
           EvalPrompt("a red circle", memorized=False)]


def test_images_per_prompt_or_round_robin():
    assert plan_prompt_indices(2, 99, 3) == [0, 0, 0, 1, 1, 1]
    assert plan_prompt_indices(3, 7, None) == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ValueError, match="no evaluation prompts"):
        plan_prompt_indices(0, 4, None)


def test_items_carry_the_prompt_metadata_and_one_seed_per_image():
    plan = sampling_plan(PROMPTS, 3, None, seed=2, placeholder="<S*>")
    assert [it.index for it in plan] == [0, 1, 2] and [it.prompt_index for it in plan] == [0, 1, 0]
    assert [it.seed for it in plan] == [2 * 1_000_003, 2 * 1_000_003 + 1, 2 * 1_000_003 + 2]
    assert [it.seed for it in plan] == [image_seed(2, i) for i in range(3)]
    first = plan[0]
    assert (first.text, first.original) == ("a <S*> harbor", "a harbor")
    assert first.paraphrases == ("a calm port", "a {} bay") and first.memorized is True
    assert plan[1].paraphrases == () and plan[1].memorized is False and plan[1].file == "00001.png"
    # Another run seed: no seed shared with this run.
    assert not {it.seed for it in plan} & {it.seed for it in sampling_plan(PROMPTS, 3, None, seed=3)}


def test_ad_hoc_items_check_their_lengths():
    items = items_for_texts(["a", "b"], [5, 6], [["x"], []])
    assert [(it.text, it.seed, it.paraphrases) for it in items] == [("a", 5, ("x",)), ("b", 6, ())]
    with pytest.raises(ValueError, match="2 texts, 1 seeds"):
        items_for_texts(["a", "b"], [5])
