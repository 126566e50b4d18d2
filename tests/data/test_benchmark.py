"""The synthetic crawl as a benchmark (SYNTHETIC.md's checks, on a 2,000-image sample, no training):
its shape is the paper's Table 1, each input carries what the paper's ablations say it does (the
oracle's ceilings), partial answers earn partial credit, matching negatives are easy to hard by
construction, and the fluency filter tells captions from OCR noise."""

import pytest

from components.data.record.boxes import box_grid
from components.data.synthetic import checks
from components.data.synthetic.build import SyntheticSpec, plan_release
from components.data.synthetic.lexicon import ZH
from components.evaluation.fields import SCORED_CHANNELS, diagnostic_sizes, field_accuracy
from components.evaluation.oracle import (
    BY_NAME,
    DENYING,
    Example,
    Oracle,
    ceilings,
    field_sheet,
    info_only_predictions,
    references,
)
from components.evaluation.scores import caption_scores


@pytest.fixture(scope="module")
def sample():
    by_split, _ = plan_release(SyntheticSpec(images=2000, seed=0), workers=2)
    return by_split


@pytest.fixture(scope="module")
def examples(sample):
    def of(splits):
        return [Example(g.truth, g.record.caption_boxes) for s in splits for g in sample[s]]

    return of(["train"]), of(["val", "test"])


@pytest.fixture(scope="module")
def ceiling(examples):
    train, held_out = examples
    return {name: scores["CIDEr"] for name, scores in ceilings(ZH, train, held_out).items()}


def test_c1_the_shape_is_the_papers_table_1(sample):
    shape = checks.shape(sample)
    assert 4.4 <= shape["captions_per_image"] <= 5.2  # 4.8
    assert shape["captions_per_image_min"] == 2 and shape["captions_per_image_max"] <= 12
    assert shape["captions_per_image_skewness"] > 0  # right-skewed
    assert 4.5 <= shape["caption_length"] <= 5.4 and shape["caption_length_mode"] == 4  # 4.9, mode 4
    assert shape["caption_length_min"] >= 2 and shape["caption_length_max"] <= 10
    assert 28 <= shape["info_length"] <= 40 and shape["categories"] == 50  # 34.8, 50
    assert shape["distinct_caption_share"] >= 0.2
    assert 0.3 <= shape["val_seen_in_train"] <= 0.7
    assert shape["test_near_duplicates"] <= 0.05


def test_boxes_of_an_image_have_distinct_location_codes_at_the_papers_grid(sample):
    boxes = [g.record.caption_boxes for split in sample.values() for g in split]
    shared = sum(n for image in boxes for n in _repeats([box_grid(b, 8) for b in image]))
    assert shared / sum(len(image) for image in boxes) < 0.01


def _repeats(codes):
    return [codes.count(code) for code in set(codes) if codes.count(code) > 1]


def test_c2_the_oracle_ceilings_keep_the_papers_order(ceiling):
    full = ceiling["full"]
    assert ceiling["no-locations"] <= 0.25 * full < ceiling["no-info"] <= 0.55 * full
    assert 0.55 * full < ceiling["no-image"] <= 0.75 * full < ceiling["baseline"] <= 0.92 * full
    assert ceiling["baseline"] < full <= ceiling["top2"]
    assert abs(ceiling["random2"] - ceiling["baseline"]) <= 0.01 * ceiling["baseline"]
    assert full < 1000  # NOISE: nobody writes the campaign theme or the slogan right every time


def test_c3_captions_right_on_their_info_parts_only_earn_partial_credit(examples):
    _, held_out = examples
    scores = caption_scores(references(held_out), info_only_predictions(ZH, held_out), meteor=False)
    assert scores["BLEU@1"] - scores["BLEU@4"] >= 10
    assert 0 < scores["CIDEr"] < 1000


def test_field_accuracy_of_the_oracles_is_lost_on_exactly_the_input_each_is_denied(examples):
    train, held_out = examples
    sheet = field_sheet(ZH, train, held_out)
    sizes = diagnostic_sizes(sheet)
    assert min(sizes.values()) >= 0.1 * len(sheet.boxes)  # each V_X is big enough to measure on
    oracle = Oracle(ZH, train)
    full = field_accuracy(sheet, sheet.ceiling)
    assert all(full[f"field_accuracy_{c}_diag"] == 1.0 for c in SCORED_CHANNELS)  # right on V_X by definition
    for channel, variant in DENYING.items():
        denied = field_accuracy(sheet, oracle.predict(held_out, BY_NAME[variant]))
        assert denied[f"field_accuracy_{channel}_diag"] <= 0.2, variant  # what V_X means
        if channel != "loc":  # without places every box of an image looks alike: every part suffers
            others = [c for c in SCORED_CHANNELS if c != channel]
            assert all(denied[f"field_accuracy_{c}"] >= 0.7 for c in others), (variant, denied)
    info_only = field_accuracy(sheet, info_only_predictions(ZH, held_out))
    assert info_only["field_accuracy_info"] == 1.0 and info_only["field_accuracy_image"] == 0.0


def test_c4_matching_negatives_are_easy_to_hard_by_construction(sample):
    truths = [g.truth for split in sample.values() for g in split]
    rejected = checks.level_rejections(truths, ZH, seed=0)
    assert rejected["level1_product"] >= 0.9
    assert rejected["level2_product"] <= 0.1 and rejected["level3_product"] <= 0.1
    assert rejected["level2_slot"] >= 0.6
    assert rejected["level3_rank"] >= 0.95


def test_c5_the_fluency_filter_tells_captions_from_ocr_noise(sample):
    train = [c for g in sample["train"] for c in g.record.captions]
    held_out = [g.truth for s in ("val", "test") for g in sample[s]]
    figures = checks.fluency(train, held_out, ZH, seed=0)
    assert figures["unseen_passed"] >= 0.9
    assert figures["scrambled_dropped"] >= 0.8
    assert figures["noise_caught"] >= 0.7
