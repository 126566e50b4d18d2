"""Grounding of amounts: numerals read, units compared in their canonical unit, words left alone."""

from pathlib import Path

import pytest

from components.publishing.grounding import amounts, chinese_number, read_units, ungrounded_amounts


@pytest.mark.parametrize(
    "numeral, value",
    [("十", 10), ("十二", 12), ("二十", 20), ("两百", 200), ("一百零五", 105), ("一千五百", 1500),
     ("三万五千", 35000), ("一百五", 150), ("一万二", 12000)],
)  # fmt: skip
def test_chinese_numerals(numeral, value):
    assert chinese_number(numeral) == value


def test_not_a_numeral_is_an_error():
    with pytest.raises(ValueError, match="not a Chinese numeral"):
        chinese_number("十x")


@pytest.mark.parametrize(
    "caption, info",
    [
        ("十二杯装", "选莱格酸奶十二杯|原榨"),
        ("1千克装", "净含量1000克"),  # converted to the canonical unit
        ("0.5L大容量", "容量500ml"),
        ("５００ＭＬ", "500毫升"),  # full width and case
        ("万能收纳 一起分享", "收纳盒"),  # numerals without a unit are words
        ("第3代", "3代升级款"),  # a bare number the info holds
        ("兩瓶裝", "两瓶"),  # Traditional characters in the caption
        ("两瓶装", "純淨水兩瓶"),  # or in the info
    ],
)
def test_grounded_amounts_pass(caption, info):
    assert ungrounded_amounts(caption, info) == []


@pytest.mark.parametrize(
    "caption, info, flagged",
    [
        ("十杯装", "酸奶十二杯", [(10.0, "杯")]),
        ("一克装", "牛肉干一百克", [(1.0, "g")]),
        ("500ml 2瓶", "350ml", [(500.0, "ml"), (2.0, "瓶")]),
        ("买3送1", "3件", [(1.0, "")]),
        ("十二杯装", "", [(12.0, "杯")]),  # an empty info supports no amount
        ("5g", "5 girls", [(5.0, "g")]),  # a unit must be the whole word: "5 girls" states no grams
    ],
)
def test_amounts_the_info_does_not_state_are_flagged(caption, info, flagged):
    assert [(a.value, a.unit) for a in ungrounded_amounts(caption, info)] == flagged


def test_longer_units_are_read_first():
    assert [(a.value, a.unit) for a in amounts("250毫升 1.5升")] == [(250.0, "ml"), (1500.0, "ml")]


def test_a_malformed_table_is_refused_with_its_line(tmp_path: Path):
    bad = tmp_path / "units.tsv"
    bad.write_text("unit\tcanonical\tfactor\n克\tg\tone\n", "utf-8")
    with pytest.raises(ValueError, match="data line 2"):
        read_units(bad)
