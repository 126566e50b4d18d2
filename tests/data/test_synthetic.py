"""The synthetic crawl's generator: determinism, the grammar's parts, the drawing, the sidecar, the
release and crawl forms. What the crawl must be as a benchmark is tests/data/test_benchmark.py."""

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from components.data.ingest.crawl import product_info
from components.data.ingest.dedup import DedupIndex
from components.data.pictures.fonts import load_font
from components.data.record.boxes import Box
from components.data.record.tokenizer import split_chars
from components.data.release.format import read_release
from components.data.synthetic.build import SyntheticSpec, assign_splits, build_crawl, build_release, plan_release
from components.data.synthetic.generate import generate_image, plan_image
from components.data.synthetic.grammar import (
    CHANNELS,
    CTX,
    IMAGE,
    INFO,
    LOC,
    NOISE,
    BoxPlan,
    caption_text,
    compose,
    drawn_words,
)
from components.data.synthetic.lexicon import EN, ZH, build_lexicon
from components.data.synthetic.probe import PROBE_SLOTS, write_image_probe
from components.data.synthetic.truth import (
    TRUTH_FILE,
    TRUTH_TABLE,
    ensure_truth,
    export_truth,
    find_truth,
    import_truth,
    read_truth,
)
from components.data.transforms.masking import box_pixel_bounds
from components.data.transforms.neighbours import chain_order


@pytest.fixture(scope="module")
def zh_sample():
    return [generate_image(ZH, 3, i, f"x{i}", noisy=False) for i in range(150)]


def test_same_seed_same_image_record_and_truth():
    a = generate_image(ZH, 5, 17, "id", noisy=True)
    b = generate_image(ZH, 5, 17, "id", noisy=True)
    assert a.record == b.record and a.truth == b.truth and a.image.tobytes() == b.image.tobytes()
    assert generate_image(ZH, 6, 17, "id", noisy=True).record != a.record


def test_worker_count_does_not_change_the_dataset(tmp_path):
    spec = SyntheticSpec(images=12, seed=11)
    build_release(spec, tmp_path / "one", workers=1)
    build_release(spec, tmp_path / "two", workers=2)
    for name in ("ref_captions.json", TRUTH_FILE):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    for png in (tmp_path / "one/images").iterdir():
        assert png.read_bytes() == (tmp_path / "two/images" / png.name).read_bytes()


def test_every_caption_is_its_parts_each_owned_by_one_channel(zh_sample):
    for made in zh_sample:
        assert [b.text for b in made.truth.boxes] == list(made.record.captions)  # clean: shown as is
        for box in made.truth.boxes:
            assert box.parts and all(p.channel in CHANNELS for p in box.parts)
            assert box.text == "".join(p.text for p in box.parts)
            assert compose(ZH, made.item, box.plan) == box.parts  # the sidecar's plan gives its parts back


def test_captions_are_distinct_within_an_image_and_in_chain_order(zh_sample):
    for made in zh_sample:
        record = made.record
        assert len(set(record.captions)) == len(record.captions)
        assert chain_order(list(record.caption_boxes)) == list(range(len(record.caption_boxes)))
        assert set(record.caption_boxes) <= set(record.all_boxes)
        assert all(2 <= len(c) <= 10 for c in record.captions)


def test_a_column_lists_the_info_attributes_by_rank_and_its_join_says_where_the_prices_are():
    decoys = columns = 0
    for index in range(120):
        item, layout = plan_image(ZH, 4, index, "t")
        rows = sorted([b for b in layout.captions + layout.others if b.row >= 0], key=lambda b: b.row)
        if not rows:
            continue
        columns += 1
        kinds = ["price" if b.plan is None else "caption" for b in rows]
        assert kinds[0] == "caption" and [b.row for b in rows] == list(range(len(rows)))
        decoys += kinds.count("price")
        captions = [b for b in rows if b.plan is not None]
        assert [b.plan.rank for b in captions] == list(range(1, len(captions) + 1))
        for box in captions:
            head = next(p for p in box.parts if p.role == "head")
            assert head.text == item.attributes[box.plan.rank - 1] and head.channel == INFO
            above = box.row > 0 and kinds[box.row - 1] == "price"
            below = box.row + 1 < len(rows) and kinds[box.row + 1] == "price"
            join = next(p for p in box.parts if p.role == "join")
            assert (box.plan.price_above, box.plan.price_below) == (above, below)
            assert join.channel == CTX and join.text == ZH.joins[2 * above + below]
    assert columns > 40 and decoys > 10  # the image shows more black rows than captions


@pytest.mark.parametrize("lexicon", [ZH, EN], ids=["zh", "en"])
def test_parts_of_different_roles_never_share_a_text(lexicon):
    texts: dict[str, set[str]] = {
        "head": {h for c in lexicon.categories for h in c.heads},
        "mod": set(lexicon.modifiers),
        "tail": {c.tail for c in lexicon.categories},
        "colour": {c for c, _ in lexicon.colours},
        "finish": set(lexicon.finishes),
        "phrase": {m.phrase for m in lexicon.markers},
        "join": set(lexicon.joins),
        "slogan": set(lexicon.slogans),
        "theme": set(lexicon.themes),
        "stem": set(lexicon.stems.values()),
        "noun": {c.noun for c in lexicon.categories},
    }
    roles = list(texts)
    for i, a in enumerate(roles):
        for b in roles[i + 1 :]:
            assert not texts[a] & texts[b], (a, b, texts[a] & texts[b])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_what_only_the_image_shows_never_appears_in_the_info(lang):
    lexicon = build_lexicon(lang)
    title_words = [*lexicon.fillers, *lexicon.brands, *(c.noun for c in lexicon.categories)]
    title_words += [c.unit for c in lexicon.categories] + [h for c in lexicon.categories for h in c.heads]
    assert not [(w, t) for w in drawn_words(lexicon) for t in title_words if w in f" {t} "]
    drawn = [c for c, _ in lexicon.colours] + list(lexicon.finishes) + [m.phrase for m in lexicon.markers]
    drawn += list(lexicon.modifiers)
    for index in range(80):
        item, _ = plan_image(lexicon, 2, index, "i")
        info = item.info(lexicon)
        words = set(info.replace("|", " ").split()) if lang == "en" else None
        for text in drawn:
            assert (text not in words) if lang == "en" else (text not in info), (text, info)


def test_the_info_holds_every_attribute_whole_after_a_separator():
    lengths = []
    for index in range(200):
        item, _ = plan_image(ZH, 8, index, "i")
        info = item.info(ZH)
        assert len(info) <= 60 and info.split("|")[1:] == list(item.attributes)
        assert 3 <= len(item.attributes) <= 6
        lengths.append(len(split_chars(info)))
    assert 28 <= np.mean(lengths) <= 40  # about the paper's 34.8


def test_all_text_ink_lies_inside_the_masked_boxes():
    for index in range(30):
        item, layout = plan_image(ZH, 9, index, "t")
        canvas = Image.new("L", layout.size, 0)
        draw = ImageDraw.Draw(canvas)
        texts = layout.captions + layout.others
        for box in texts:
            draw.text(box.origin, box.text, font=load_font("zh", box.font_size), fill=255)
        ink = np.asarray(canvas) > 0
        covered = np.zeros_like(ink)
        width, height = layout.size
        for box in texts:
            x0, y0, x1, y1 = box.rect
            covered[max(0, y0) : y1 + 1, max(0, x0) : x1 + 1] = True
        assert ink.any() and not (ink & ~covered).any(), f"image {index}: text ink outside its box"
        for box in layout.captions:  # the stored fractions map back onto the same pixels
            x0, y0, x1, y1 = box.rect
            fraction = (round(x0 / width, 4), round(y0 / height, 4), round(x1 / width, 4), round(y1 / height, 4))
            assert box_pixel_bounds(Box(*fraction), width, height) == (x0, y0, x1, y1)


def test_training_captions_carry_labelled_noise_and_held_out_ones_none():
    noisy = [generate_image(ZH, 2, i, "n", noisy=True).truth for i in range(300)]
    clean = [generate_image(ZH, 2, i, "n", noisy=False).truth for i in range(300)]
    assert all(b.noise is None and b.shown == b.text for t in clean for b in t.boxes)
    boxes = [b for t in noisy for b in t.boxes]
    kinds = Counter(b.noise for b in boxes if b.noise)
    assert set(kinds) <= {"lookalike", "dropped"} and 0 < sum(kinds.values()) < 0.08 * len(boxes)
    for box in boxes:
        assert (box.shown != box.text) == (box.noise is not None)
        if box.noise == "lookalike":
            assert len(box.shown) == len(box.text)
            assert sum(a != b for a, b in zip(box.shown, box.text, strict=True)) == 1
        if box.noise == "dropped":
            assert len(box.shown) == len(box.text) - 1


def test_the_crawl_form_draws_the_release_products_with_labelled_noise(tmp_path):
    spec = SyntheticSpec(images=40, seed=5)
    partition = build_crawl(spec, tmp_path, "2026-11-20", workers=1)
    lines = [json.loads(line) for line in (partition / "products.jsonl").read_text("utf-8").splitlines()]
    truth = read_truth(str(partition))
    for line in lines[:10]:
        index = int(line["product_id"].split("-")[1])
        release = generate_image(ZH, spec.seed, index, line["product_id"], noisy=False, draw=False)
        assert product_info(line["title"], line["attributes"]) == release.record.info  # the same product
        assert truth.images[line["product_id"]].item == release.item
    boxes = [b for t in truth.images.values() for b in t.boxes]
    assert {b.noise for b in boxes} - {None} <= {"lookalike", "truncated", "dropped", "merged"}
    assert 0 < sum(b.noise is not None for b in boxes) < 0.2 * len(boxes)
    merged = [b for b in boxes if b.noise == "merged"]
    assert all(b.shown.startswith(b.text) and len(b.shown) > len(b.text) for b in merged)
    assert (partition / "_SUCCESS").exists()


def test_english_mode_uses_words():
    made = generate_image(EN, 1, 0, "e", noisy=False)
    assert all(c.isascii() for c in made.record.captions) and "|" in made.record.info
    assert all(b.text == " ".join(p.text for p in b.parts) for b in made.truth.boxes)


def test_splits_are_seeded_and_sized():
    spec = SyntheticSpec(images=100, seed=3, val_fraction=0.1, test_fraction=0.05)
    splits = assign_splits(spec)
    assert splits.count("val") == 10 and splits.count("test") == 5 and splits == assign_splits(spec)
    assert assign_splits(SyntheticSpec(images=100, seed=4)) != splits


def test_built_folder_reads_back_clean_with_its_truth(tiny_dataset):
    root, by_split, tokenizer = tiny_dataset
    for split in ("train", "val", "test"):
        assert read_release(root, split, strict=True).records == by_split[split]
    assert sum(len(v) for v in by_split.values()) == 30 and len(by_split["val"]) == 3
    # the vocabulary is the training split's characters seen at least twice, nothing else
    counts = Counter(ch for r in by_split["train"] for text in (*r.captions, r.info) for ch in split_chars(text))
    assert set(list(tokenizer.word2int)[5:]) == {ch for ch, n in counts.items() if n >= 2}
    truth = read_truth(str(root))
    assert truth.lang == "zh" and truth.header["seed"] == 7 and len(truth.images) == 30
    for split in ("train", "val", "test"):
        for record in by_split[split]:
            assert [b.shown for b in truth.images[record.image_id].boxes] == list(record.captions)


def test_the_truth_is_a_table_of_its_own_exported_line_for_line(tmp_path, tiny_dataset):
    root, _, _ = tiny_dataset
    assert find_truth(str(root)) == str(Path(root) / TRUTH_TABLE)  # built with the release: imported
    assert export_truth(str(root), str(tmp_path / "out"))
    assert (tmp_path / "out" / TRUTH_FILE).read_bytes() == (Path(root) / TRUTH_FILE).read_bytes()
    copy = tmp_path / "copy"  # a dataset whose sidecar is a file only: imported on its first read
    copy.mkdir()
    shutil.copyfile(Path(root) / TRUTH_FILE, copy / TRUTH_FILE)
    assert ensure_truth(str(copy)) == str(copy / TRUTH_TABLE)
    (copy / TRUTH_FILE).unlink()  # read from the table from then on
    assert read_truth(str(copy)) == read_truth(str(root)) and len(read_truth(str(copy)).images) == 30


def test_a_folder_without_a_truth_has_none(tmp_path):
    assert find_truth(str(tmp_path)) is None and read_truth(str(tmp_path)) is None
    assert not export_truth(str(tmp_path), str(tmp_path / "out")) and not import_truth(str(tmp_path))
    (tmp_path / TRUTH_FILE).write_text('{"format": "something else"}\n', "utf-8")
    with pytest.raises(ValueError, match="not a version-2 synthetic truth file"):
        read_truth(str(tmp_path))


def test_the_image_probe_keeps_the_call_outs_captioned_with_what_only_the_image_shows(tmp_path, tiny_dataset):
    root, by_split, _ = tiny_dataset
    kept = write_image_probe(str(root), tmp_path / "probe")
    truth = read_truth(str(root))
    probe = read_release(tmp_path / "probe", "train")
    assert not probe.rejections and len(probe.records) == kept["train"]
    with_callouts = [r for r in by_split["train"] if any(b.slot in PROBE_SLOTS for b in truth.images[r.image_id].boxes)]
    assert kept["train"] == len(with_callouts) > 0
    source = {r.image_id: r for r in by_split["train"]}
    callouts = 0
    for record in probe.records:
        boxes = [b for b in truth.images[record.image_id].boxes if b.slot in PROBE_SLOTS]
        original = source[record.image_id]
        expected = ["".join(p.text for p in b.parts if p.channel == IMAGE) for b in boxes]
        assert list(record.captions) == expected and all(expected)
        assert set(record.caption_boxes) < set(original.caption_boxes) or len(boxes) == len(original.captions)
        assert record.all_boxes == original.all_boxes and record.info == original.info  # the same pixels, masked
        callouts += len(boxes)
    assert callouts >= kept["train"]
    assert (tmp_path / "probe" / "images").resolve() == (root / "images").resolve()


def test_near_duplicates_of_earlier_images_are_re_planned():
    by_split, attempts = plan_release(SyntheticSpec(images=400, seed=1))
    images = sorted((g for split in by_split.values() for g in split), key=lambda g: g.record.image_id)
    assert len(images) == 400 and 0 < len(attempts) < 200  # some images were near-duplicates at first ...
    seen, left = DedupIndex(0.7), 0
    for made in images:  # ... and (bar one that still is after every attempt) none is now
        left += seen.near_duplicate_of(made.record.image_id, made.record.captions) is not None
        seen.add(made.record.image_id, made.record.captions)
    assert left <= 2
    for index, attempt in list(attempts.items())[:20]:
        first = generate_image(ZH, 1, index, f"s1-{index:07d}", noisy=False, draw=False)
        assert [b.text for b in images[index].truth.boxes] != [b.text for b in first.truth.boxes] and attempt >= 1


def test_compose_covers_every_slot_and_length_class():
    item, _ = plan_image(ZH, 1, 3, "c")
    item = item if item.markers else item.__class__(**{**item.__dict__, "markers": (0,)})
    owners = set()
    for slot, lengths in {
        "brand": 3,
        "column": 3,
        "colour": 3,
        "marker": 2,
        "spec": 1,
        "banner": 1,
        "slogan": 1,
    }.items():
        for length in range(lengths):
            plan = BoxPlan(slot, length, rank=1, marker=item.markers[0], slogan=0)
            parts = compose(ZH, item, plan)
            owners |= {p.channel for p in parts}
            assert 2 <= len(caption_text(ZH, parts)) <= 10
    assert owners == {INFO, IMAGE, LOC, CTX, NOISE}
    with pytest.raises(ValueError, match="unknown slot"):
        compose(ZH, item, BoxPlan("nothing"))


def test_spec_validation():
    with pytest.raises(ValueError, match="at least 1"):
        SyntheticSpec(images=0)
    with pytest.raises(ValueError, match="lang"):
        SyntheticSpec(images=5, lang="fr")
