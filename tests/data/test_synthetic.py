import random
from statistics import mean

import numpy as np
import pytest
from PIL import Image, ImageDraw

from components.data.boxes import Box
from components.data.fonts import load_font
from components.data.masking import box_pixel_bounds
from components.data.neighbours import chain_order
from components.data.release import read_release
from components.data.synthetic.build import SyntheticSpec, assign_splits, build_release
from components.data.synthetic.generate import generate_image, image_rng, plan_layout, sample_item
from components.data.synthetic.lexicon import EN, ZH


@pytest.fixture(scope="module")
def zh_sample():
    return [generate_image(ZH, 3, i, f"x{i}", noisy=False) for i in range(300)]


def test_same_seed_same_image_and_record():
    a = generate_image(ZH, 5, 17, "id", noisy=True)
    b = generate_image(ZH, 5, 17, "id", noisy=True)
    assert a[1] == b[1] and a[2].tobytes() == b[2].tobytes()
    c = generate_image(ZH, 6, 17, "id", noisy=True)
    assert c[1] != a[1]


def test_worker_count_does_not_change_the_dataset(tmp_path):
    spec = SyntheticSpec(images=12, seed=11)
    build_release(spec, tmp_path / "one", workers=1)
    build_release(spec, tmp_path / "two", workers=2)
    assert (tmp_path / "one/ref_captions.json").read_bytes() == (tmp_path / "two/ref_captions.json").read_bytes()
    for png in (tmp_path / "one/images").iterdir():
        assert png.read_bytes() == (tmp_path / "two/images" / png.name).read_bytes()


def test_statistics_match_the_papers_shape(zh_sample):
    per_image = [len(record.captions) for _, record, _ in zh_sample]
    lengths = [len(c) for _, record, _ in zh_sample for c in record.captions]
    assert 4.0 <= mean(per_image) <= 6.0 and min(per_image) >= 2
    assert min(lengths) >= 2 and max(lengths) <= 10 and 3.0 <= mean(lengths) <= 6.0
    assert {min(image.size) for _, _, image in zh_sample} == {256}


def test_captions_are_distinct_within_an_image_and_in_chain_order(zh_sample):
    for _, record, _ in zh_sample:
        assert len(set(record.captions)) == len(record.captions)
        assert chain_order(list(record.caption_boxes)) == list(range(len(record.caption_boxes)))
        assert set(record.caption_boxes) <= set(record.all_boxes)


def test_some_images_have_masked_boxes_that_are_not_captions(zh_sample):
    extra = sum(len(record.all_boxes) - len(record.caption_boxes) for _, record, _ in zh_sample)
    assert extra > 0.5 * len(zh_sample)  # prices and discounts


def test_all_text_ink_lies_inside_the_masked_boxes():
    for index in range(40):
        rng = image_rng(9, index)
        item = sample_item(ZH, rng, "t")
        layout = plan_layout(item, ZH, rng)
        canvas = Image.new("L", layout.size, 0)
        draw = ImageDraw.Draw(canvas)
        for slot in layout.captions + layout.distractors:
            draw.text(slot.origin, slot.text, font=load_font("zh", slot.font_size), fill=255)
        ink = np.asarray(canvas) > 0
        covered = np.zeros_like(ink)
        width, height = layout.size
        for slot in layout.captions + layout.distractors:
            x0, y0, x1, y1 = slot.rect
            covered[max(0, y0) : y1 + 1, max(0, x0) : x1 + 1] = True
        assert ink.any() and not (ink & ~covered).any(), f"image {index}: text ink outside its box"
        # and the stored fractions map back onto the same pixels
        for slot in layout.captions:
            x0, y0, x1, y1 = slot.rect
            box = (round(x0 / width, 4), round(y0 / height, 4), round(x1 / width, 4), round(y1 / height, 4))
            assert box_pixel_bounds(Box(*box), width, height) == (x0, y0, x1, y1)


def test_feature_column_follows_info_order():
    for index in range(60):
        rng = image_rng(4, index)
        item = sample_item(ZH, rng, "t")
        layout = plan_layout(item, ZH, rng)
        column = sorted((s for s in layout.captions if s.kind == "feature"), key=lambda s: s.rect[1])
        assert [s.text for s in column] == list(item.features[: len(column)])


@pytest.mark.parametrize("lexicon", [ZH, EN], ids=["zh", "en"])
def test_image_only_phrases_never_appear_in_the_info(lexicon):
    info_phrases = {f for c in lexicon.categories for f in c.features} | set(lexicon.brands)
    info_phrases |= set(lexicon.title_fillers) | {c.name for c in lexicon.categories}
    for phrase in [name for name, _ in lexicon.colours] + [m.phrase for m in lexicon.markers]:
        assert all(phrase not in text for text in info_phrases), phrase


def test_ocr_noise_only_in_noisy_records():
    clean_phrases = {f for c in ZH.categories for f in c.features} | set(ZH.brands)
    clean_phrases |= {p for ps in ZH.banners.values() for p in ps} | {n for n, _ in ZH.colours}
    clean_phrases |= {m.phrase for m in ZH.markers}
    noisy = [c for i in range(200) for c in generate_image(ZH, 2, i, "n", noisy=True)[1].captions]
    clean = [c for i in range(200) for c in generate_image(ZH, 2, i, "n", noisy=False)[1].captions]
    assert all(c in clean_phrases for c in clean)
    changed = [c for c in noisy if c not in clean_phrases]
    assert 0 < len(changed) < 0.3 * len(noisy)
    assert all(ch in set(ZH.lookalikes.values()) for c in changed for ch in c if ch not in "".join(clean_phrases))


def test_english_mode_uses_words():
    _, record, _ = generate_image(EN, 1, 0, "e", noisy=False)
    assert all(c.isascii() for c in record.captions) and " " in record.info


def test_splits_are_seeded_and_sized():
    spec = SyntheticSpec(images=100, seed=3, val_fraction=0.1, test_fraction=0.05)
    splits = assign_splits(spec)
    assert splits.count("val") == 10 and splits.count("test") == 5 and splits == assign_splits(spec)
    assert assign_splits(SyntheticSpec(images=100, seed=4)) != splits


def test_built_folder_reads_back_clean(tiny_dataset):
    root, by_split, tokenizer = tiny_dataset
    for split in ("train", "val", "test"):
        result = read_release(root, split, strict=True)
        assert result.records == by_split[split]
    assert sum(len(v) for v in by_split.values()) == 30 and len(by_split["val"]) == 3
    # the vocabulary is the training split's characters seen at least twice, nothing else
    from collections import Counter

    counts = Counter(ch for r in by_split["train"] for text in (*r.captions, r.info) for ch in text if ch != " ")
    assert set(list(tokenizer.word2int)[5:]) == {ch for ch, n in counts.items() if n >= 2}


def test_spec_validation():
    with pytest.raises(ValueError, match="at least 1"):
        SyntheticSpec(images=0)
    with pytest.raises(ValueError, match="lang"):
        SyntheticSpec(images=5, lang="fr")
    rng = random.Random(0)
    assert sample_item(ZH, rng, "a").image_id == "a"
