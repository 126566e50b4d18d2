"""Grounding of claims: materials, origins, certifications and brands, as whole words, by group."""

import pytest

from components.publishing.choice import ungrounded
from components.publishing.claims import CLAIMS_FILE, brand_claim, claims, read_claim_terms, ungrounded_claims


@pytest.mark.parametrize(
    ("caption", "info"),
    [
        ("纯棉T恤", "全棉短袖|透气"),  # one group: 全棉 grounds 纯棉
        ("有機棉", "有机棉T恤"),  # Traditional caption, Simplified info
        ("麦兰官方旗舰", "麦兰跟靶窥已穷送音箱官方直营"),  # the brand is in the info
        ("麦兰出品", "麦兰音箱"),
        ("Mailan official store", "Mailan speaker"),
        ("100% Cotton", "cotton tee"),
        ("3C认证", "3c认证充电器"),
    ],
)
def test_claims_the_info_makes_are_grounded(caption, info):
    assert ungrounded_claims(caption, info) == []


@pytest.mark.parametrize(
    ("caption", "info", "missing"),
    [
        ("真丝睡衣", "丝滑睡衣", [("真丝", "material")]),  # 丝滑 (silky) is no silk
        ("日本进口", "国产", [("进口", "origin"), ("日本", "origin")]),
        ("FDA认证", "保温杯", [("fda", "certification"), ("认证", "certification")]),
        ("丽卡官方旗舰", "麦兰跟靶窥音箱", [("丽卡", "brand")]),  # a brand the info never names
        ("鸭绒被", "白鹅绒被", [("鸭绒", "material")]),  # duck down is not goose down
        ("钛金属", "不锈钢", [("钛", "material")]),
    ],
)
def test_claims_the_info_does_not_make_are_named_with_their_kind(caption, info, missing):
    assert [(c.text, c.kind) for c in ungrounded_claims(caption, info)] == missing


@pytest.mark.parametrize("text", ["棉花糖", "铜锣烧", "棉签", "黄金周", "金色", "有机会", "nice face", "大品牌"])
def test_words_that_only_contain_a_term_claim_nothing(text):
    assert claims(text) == []  # jieba's whole words: 棉 is not in 棉花糖, 铜 not in 铜锣烧; 大 names no brand


def test_the_brand_is_the_text_before_the_first_cue():
    assert brand_claim("麦兰官方旗舰").text == "麦兰" and brand_claim("官方正品") is None
    assert brand_claim("Mailan flagship").text == "mailan"


def test_grounding_reasons_name_amounts_and_claims():
    assert ungrounded("500ml日本进口", "350毫升|国产") == ["500ml", "进口 (origin)", "日本 (origin)"]


def test_the_table_is_well_formed_and_a_bad_line_is_named(tmp_path):
    terms = read_claim_terms()
    assert {t.kind for t in terms} == {"material", "origin", "certification", "brand_cue"}
    assert len({t.term for t in terms}) == len(terms)  # no term twice
    assert all(t.source for t in terms)
    bad = tmp_path / "claims.tsv"
    bad.write_text(CLAIMS_FILE.read_text("utf-8").splitlines()[-1].join(["term\tkind\tgroup\tsource\n", "\n"])
                   + "棉\tfabric\tcotton\tx\n", "utf-8")  # fmt: skip
    with pytest.raises(ValueError, match="data line 3 must be 'term<TAB>kind<TAB>group<TAB>source', its kind one of"):
        read_claim_terms(bad)
