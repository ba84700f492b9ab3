import numpy as np
import pytest

from benchmark.world import archive as A
from benchmark.world import generator as G
from benchmark.world.source import attributes_in_text
from benchmark.world.tokenizer import build_world_tokenizer
from benchmark.world.vocabulary import vocabulary_words


def test_rendering_is_a_pure_function_of_the_seed():
    a = G.ShapeAttributes("star", "red", "solid", "white")
    one = G.render_shape_image(a, np.random.default_rng(5))
    two = G.render_shape_image(a, np.random.default_rng(5))
    other = G.render_shape_image(a, np.random.default_rng(6))
    assert one.shape == (32, 32, 3) and one.dtype == np.uint8
    assert np.array_equal(one, two) and not np.array_equal(one, other)
    assert np.array_equal(G.render_archive_image(3), G.render_archive_image(3))


def test_public_split_never_shows_the_private_style_or_held_out_pairs():
    space = G.public_attribute_space()
    assert not any(a.is_private_style or a.is_proxy_style for a in space)
    assert not any((a.shape, a.colour) in G.HELD_OUT_PAIRS for a in space)
    # ... but every attribute value on its own does occur, so the style is a new combination.
    assert {a.fill for a in space} == set(G.FILLS) and {a.background for a in space} == set(G.BACKGROUNDS)


def test_shapes_differ_in_pixels():
    rng = np.random.default_rng(0)
    images = {s: G.render_shape_image(G.ShapeAttributes(s, "blue", "solid", "white"), rng) for s in G.SHAPES}
    for s in G.SHAPES:
        for t in G.SHAPES:
            if s < t:
                assert np.abs(images[s].astype(int) - images[t].astype(int)).mean() > 5, (s, t)


def test_memorized_captions_are_unique_with_ten_plus_distinct_paraphrases():
    entries = A.archive_entries()
    memorized = [e for e in entries if e.memorized]
    assert len(memorized) == 16
    assert len({e.caption for e in entries}) == len(entries)
    assert len({e.place for e in memorized}) == 16  # one place word per memorized image
    for e in memorized:
        para = e.paraphrases()
        assert len(para) >= 10 and len(set(para)) == len(para) and e.caption not in para
        assert all(e.place in p for p in para)
        # Paraphrases keep the drawn content (in either order of the two shapes).
        assert all(e.scene.content() in p or e.scene.content(flip=True) in p for p in para), e.caption


def test_archive_captions_describe_what_is_drawn():
    e = next(x for x in A.archive_entries() if x.memorized)
    scene = e.scene
    assert e.caption.endswith(scene.content())
    for p in (scene.first, scene.second):
        assert f"{p.colour} {p.shape}" in e.caption
    image = e.render()
    level = G.BACKGROUNDS[scene.background]
    assert abs(int(np.median(image[..., 0])) - level) <= 10  # the background is the named one
    # "left of" / "above" is true of the drawing.
    axis = 0 if scene.relation == "left of" else 1
    assert (scene.first.cx, scene.first.cy)[axis] < (scene.second.cx, scene.second.cy)[axis]
    # The same content in another layout: other pixels, same words.
    other = e.render(layout_seed=5)
    assert not np.array_equal(image, other)
    assert A.motif_entry(e.image_seed, None).scene.content() == scene.content()


def test_motif_scenes_share_the_motif_and_nothing_else():
    from benchmark.world.scenes import MOTIF_BOX

    entries = A.motif_entries(3)
    assert len(entries) == 3 * 4 and len({e.caption for e in entries}) == len(entries)
    x0, y0, x1, y1 = MOTIF_BOX
    a, b = entries[0].render(), entries[1].render()  # same motif, different scenes
    assert entries[0].caption.endswith("with the crest of halcyon")
    assert not np.array_equal(a, b)
    # Inside the motif box the two differ only where the background shows (its level).
    inside = np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1].astype(int))
    outside = np.abs(a.astype(int) - b.astype(int)).sum() - inside.sum()
    assert outside > 0 and all(p in entries[0].paraphrases()[0] for p in ("crest", "halcyon"))


def test_every_caption_fits_the_text_encoder_context():
    tok = build_world_tokenizer(vocabulary_words(), 20)
    archive = A.archive_entries()
    entries = [e for e in archive if e.memorized] + archive[::10] + A.motif_entries(2)  # memorized + a tenth
    texts = [t for e in entries for t in [e.caption, *e.paraphrases()]]
    assert max(len(tok(t).input_ids) for t in texts) <= 20
    assert all(len(tok.tokenize(t)) == len(t.split()) for t in texts[:200])  # every word one token


def test_pretraining_captions_train_every_prompt_word():
    # CLIP has trained every word of a prompt; a world word only prompts use would keep its
    # random row (on the first tinyworld-v4 build, "in the style of" made the base model miss
    # the prompted shape in 83% of generations).
    rng = np.random.default_rng(0)
    words = {w for a in G.public_attribute_space() for _ in range(20) for w in G.public_caption(a, rng).split()}
    entries = A.archive_entries()[::5] + A.motif_entries(2)
    words |= {w for e in entries for c in e.training_captions() for w in c.split()}
    assert set(vocabulary_words()) - words == {"solid"}  # the default fill, never written


def test_only_public_styles_have_names_and_memorized_captions_are_fixed():
    named = set(G.PUBLIC_STYLE_NAMES)
    assert named == {(a.fill, a.background) for a in G.public_attribute_space()}
    assert (G.PRIVATE_STYLE["fill"], G.PRIVATE_STYLE["background"]) not in named
    assert (G.PROXY_STYLE["fill"], G.PROXY_STYLE["background"]) not in named
    rng = np.random.default_rng(1)
    a = G.ShapeAttributes("circle", "orange", "striped", "white")
    styled = {c for c in (G.public_caption(a, rng) for _ in range(200)) if "style of" in c}
    assert styled and all(c.endswith("in the style of farrow") for c in styled)
    assert "an orange circle in the style of farrow" in styled
    entries = A.archive_entries()
    memorized, single = next(e for e in entries if e.memorized), next(e for e in entries if not e.memorized)
    assert memorized.training_captions() == (memorized.caption,)
    assert single.training_captions() == (single.caption, *single.paraphrases())


def test_captions_name_the_attributes_the_judge_checks():
    a = G.ShapeAttributes("triangle", "orange", "outlined", "gray")
    assert attributes_in_text(G.full_caption(a)) == {"shape": "triangle", "colour": "orange",
                                                     "fill": "outlined", "background": "gray"}
    assert attributes_in_text("a red star in the style of <S*>") == {"shape": "star", "colour": "red"}


def test_world_tokenizer_keeps_every_word_whole_and_accepts_placeholders():
    tok = build_world_tokenizer(vocabulary_words(), 20)
    for caption in ["the quiet harbor of marlow , a red circle left of a blue star on gray",
                    "a red striped star on a black background"]:
        assert len(tok.tokenize(caption)) == len(caption.split())
    tok.add_tokens(["<S*>"])
    ids = tok("a painting in the style of <S*>").input_ids
    assert ids[-2] == tok.convert_tokens_to_ids("<S*>")
    # An unknown word still tokenizes (into pieces), as with the real CLIP vocabulary.
    assert len(tok.tokenize("zqxv")) >= 1 and tok.unk_token_id not in tok("zqxv").input_ids[1:-1]


@pytest.mark.parametrize("bad", ["hexagon"])
def test_unknown_shape_is_an_error(bad):
    with pytest.raises(ValueError, match="hexagon"):
        G.render_shape_image(G.ShapeAttributes(bad, "red", "solid", "white"), np.random.default_rng(0))


def test_caption_share_is_the_between_group_share_of_pixel_variance():
    from benchmark.world.detection_diagnosis import caption_share

    rng = np.random.default_rng(0)
    groups = {g: list(rng.normal(10.0 * g, 1.0, size=(50, 2, 2, 3))) for g in range(3)}
    x = np.concatenate([np.stack(v) for v in groups.values()]).reshape(150, -1)
    means = np.stack([np.stack(v).reshape(50, -1).mean(axis=0) for v in groups.values()])
    between = ((means - x.mean(axis=0)) ** 2).mean(axis=0).sum()  # equal group sizes
    assert caption_share(groups) == pytest.approx(between / x.var(axis=0).sum(), rel=1e-9)
    same = {g: list(rng.normal(0.0, 1.0, size=(200, 2, 2, 3))) for g in range(3)}
    assert caption_share(same) < 0.05  # groups that share one distribution: the caption fixes nothing
