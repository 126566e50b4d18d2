"""The released pipeline's cleaning of OCR text, and reading a crawl's product lines (pure, no Ray)."""

import json

import pytest

from components.data.ingest.cleaning import clean_texts, core, normalise, text_rejection, widened_box
from components.data.ingest.crawl import parse_product, product_info
from components.data.ingest.ocr import OcrText
from components.data.record.boxes import Box
from components.data.record.rejection import RecordRejected
from components.data.record.tokenizer import split_chars


@pytest.mark.parametrize(
    "text,reason",
    [
        ("深层补水", None),
        ("清爽 不油腻", None),  # spaces do not count
        ("【新品】", None),  # punctuation is stripped before counting: 2 characters
        ("保湿·滋润", None),
        ("一二三四五六七八九十", None),  # 10 characters: the longest kept
        ("一二三四五六七八九十一", "too_long"),
        ("补", "too_short"),
        ("补。", "too_short"),
        ("¥177", "digits"),  # prices
        ("到手价133", "digits"),
        ("限时9折", "digits"),  # discounts
        ("第2件半价", "digits"),
        ("100%纯棉", "digits"),
        ("A类面料", "latin_letters"),
        ("Nike", "latin_letters"),
        ("补水!", "price_or_discount"),
        ("买一送一>", "price_or_discount"),
        ("满减/包邮", "price_or_discount"),
        ("加购+收藏", "price_or_discount"),
        ("保湿、补水", "price_or_discount"),
        ("ー・ー", "no_cjk"),  # the long-vowel mark is a letter, the middle dot punctuation
        ("カタカナ", "no_cjk"),  # Japanese kana are not CJK ideographs
        ("한국어", "no_cjk"),
    ],
)
def test_cleaning_rules(text, reason):
    assert text_rejection(normalise(text)) == reason


def test_nfkc_turns_full_width_forms_into_plain_ones():
    assert normalise("￥１７７") == "¥177" and normalise("补水！") == "补水!" and normalise("ＡＢＣ") == "ABC"
    assert text_rejection(normalise("补水！")) == "price_or_discount"  # the full-width mark is caught too
    assert normalise("  清爽\u3000不油腻 ") == "清爽 不油腻"  # an ideographic space collapses like any other
    assert core("【清爽 不油腻】") == "清爽不油腻"


def quad(x1, y1, x2, y2):
    return ((x1, y1), (x2, y1), (x2, y2), (x1, y2))


def test_boxes_are_widened_clipped_and_fractions():
    box = widened_box(OcrText(quad(10, 20, 110, 40), "x"), (200, 100), padding=2)
    assert box == Box(0.04, 0.18, 0.56, 0.42)
    edge = widened_box(OcrText(quad(0, 0, 199, 99), "x"), (200, 100), padding=2)
    assert edge == Box(0.0, 0.0, 0.995, 0.99)  # clipped to the last pixel


def test_an_image_keeps_its_captions_in_chain_order_and_masks_every_text():
    texts = [
        OcrText(quad(10, 200, 90, 220), "营养丰富"),
        OcrText(quad(10, 10, 60, 30), "山野"),
        OcrText(quad(150, 150, 190, 170), "¥99"),
        OcrText(quad(10, 100, 90, 120), "浓稠拉丝"),
        OcrText(quad(120, 10, 160, 30), "补水"),
        OcrText(quad(120, 60, 160, 80), "补水"),  # on the image twice: every copy goes
        OcrText(quad(10, 150, 90, 170), "乱码字符串"),
    ]
    fluent = lambda text: text != "乱码字符串"  # noqa: E731
    cleaned = clean_texts(texts, (200, 240), "山野 蜂蜜 浓稠拉丝", fluent)
    assert len(cleaned.mask_boxes) == 7  # all_locs: every OCR text, kept or not
    assert cleaned.captions == ("山野", "浓稠拉丝", "营养丰富")  # the chain from the top-most box
    reasons = {f.text: f.reason for f in cleaned.fates}
    assert reasons["¥99"] == "digits" and reasons["补水"] == "repeated" and reasons["乱码字符串"] == "not_fluent"
    everything_fluent = clean_texts(texts, (200, 240), "", lambda text: False)
    assert everything_fluent.captions == ()  # nothing passes a filter that accepts nothing ...
    in_info = clean_texts(texts, (200, 240), "山野 浓稠拉丝 营养丰富", lambda text: False)
    assert in_info.captions == ("山野", "浓稠拉丝", "营养丰富")  # ... unless the info contains it


def line(**values):
    base = {"product_id": "p-1", "title": "山野蜂蜜 旗舰店", "attributes": {"brand": "山野"}, "image": "images/p-1.png"}
    return json.dumps({**base, **values}, ensure_ascii=False)


@pytest.mark.parametrize(
    "text,field,reason",
    [
        ("{not json", "<line>", "bad_json"),
        ("[1, 2]", "<line>", "bad_type"),
        (json.dumps({"product_id": "p", "title": "t", "image": "i.png"}), "attributes", "missing_key"),
        (line(product_id=7), "product_id", "bad_type"),
        (line(product_id="../../etc"), "product_id", "unsafe_id"),
        (line(product_id="p-1\n"), "product_id", "unsafe_id"),  # a trailing newline: the whole id must match
        (line(product_id="p\ud800"), "product_id", "unsafe_id"),
        ("[" * 100_000, "<line>", "too_deep"),
        ('{"product_id": "' + "x" * 1_000_001 + '"}', "<line>", "too_large"),
        (line(attributes="red"), "attributes", "bad_type"),
        (line(url=3), "url", "bad_type"),
    ],
)
def test_bad_product_lines_name_the_field(text, field, reason):
    with pytest.raises(RecordRejected) as raised:
        parse_product("crawl_date=2026-11-20", 3, text)
    assert (raised.value.rejection_field, raised.value.reason) == (field, reason)


def test_info_is_the_title_and_the_attribute_values_it_lacks_each_after_a_separator():
    product = parse_product(
        "crawl_date=2026-11-20", 1, line(attributes={"brand": "山野", "features": ["浓稠拉丝", "天然"]})
    )
    assert (product.line, product.image) == (1, "images/p-1.png")
    # the brand is in the title already; the separator is a token of its own (spaces are not)
    assert product_info(product.title, product.attributes) == "山野蜂蜜 旗舰店|浓稠拉丝|天然"
    assert split_chars(product_info(product.title, product.attributes)).count("|") == 2
    assert product_info("标题" * 40, ["很长"], limit=60) == "标题" * 30
