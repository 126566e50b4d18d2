"""The compliance term list: every term's source named, variants of a term found, clean captions passed."""

from pathlib import Path

import pytest

from components.publishing.compliance import TERMS_FILE, normalise, prohibited_terms, read_terms


def test_every_term_names_its_kind_and_an_article_of_the_law():
    terms = read_terms()
    assert len(terms) >= 30
    assert {t.kind for t in terms} == {"absolute", "state_endorsement", "medical", "efficacy"}
    assert all("Art." in t.source for t in terms)
    assert len({t.term for t in terms}) == len(terms)  # no term listed twice after normalisation


@pytest.mark.parametrize(
    "caption, found",
    [
        ("全网最低价", ["最"]),
        ("國家級品質", ["国家级"]),  # Traditional characters
        ("顶 级 面 霜", ["顶级"]),  # spaced out
        ("有效率１００％", ["100%"]),  # full-width digits and percent sign
        ("本品根治失眠", ["根治"]),
        ("政府特供", ["特供"]),
        ("回购首选 第一品牌", ["第一", "首选"]),  # list order
    ],
)
def test_variants_of_a_term_are_found(caption, found):
    assert [t.term for t in prohibited_terms(caption)] == found


@pytest.mark.parametrize("caption", ["原榨推荐", "选莱格官方旗舰", "十二杯装", "全国包邮", "新品首发", "Free shipping"])
def test_ordinary_captions_pass(caption):
    assert prohibited_terms(caption) == []


def test_normalise_folds_width_script_case_and_spaces():
    assert normalise("ＡＢ 國 c") == "ab国c"


def test_a_malformed_list_is_refused_with_its_line(tmp_path: Path):
    bad = tmp_path / "terms.tsv"
    bad.write_text("# comment\nterm\tkind\tsource\n最\tabsolute\n", "utf-8")
    with pytest.raises(ValueError, match="data line 2 must have three"):
        read_terms(bad)
    assert TERMS_FILE.is_file()


def test_banned_terms_become_the_token_sequences_decoding_forbids():
    from components.data.record.tokenizer import SPECIALS, Tokenizer
    from components.publishing.compliance import Term, forbidden_sequences

    vocabulary = {token: i for i, token in enumerate([*SPECIALS, *"最佳国家级國級"])}
    tokenizer = Tokenizer.from_vocabulary(vocabulary, "char")
    terms = (Term("最佳", "absolute", "x"), Term("国家级", "absolute", "x"), Term("首选", "absolute", "x"))
    sequences = forbidden_sequences(tokenizer, terms)
    assert tuple(tokenizer.ids("最佳")) in sequences and tuple(tokenizer.ids("国家级")) in sequences
    assert tuple(tokenizer.ids("國家級")) in sequences  # its Traditional spelling, which this vocabulary holds
    assert len(sequences) == 3  # 首选 is outside the vocabulary: the model cannot write it anyway
