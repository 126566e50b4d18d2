import json

import pytest

from components.data.record.tokenizer import EOS, PAD, SOS, SPECIALS, UNK, Tokenizer, guess_mode, split_words


@pytest.fixture
def zh():
    return Tokenizer.build(["深层补水", "持久保湿", "补水保湿 面霜"], mode="char", min_count=1)


def test_specials_have_fixed_ids(zh):
    assert [zh.word2int[s] for s in SPECIALS] == [0, 1, 2, 3, 4]
    assert (UNK, PAD, SOS, EOS) == (0, 1, 2, 3)


def test_chinese_round_trip(zh):
    ids = zh.encode_caption("持久补水")
    assert ids[0] == SOS and ids[-1] == EOS and len(ids) == 6
    assert zh.decode(ids) == "持久补水"


def test_english_round_trip():
    en = Tokenizer.build(["deep hydration", "Lasting moisture", "no white cast"], mode="word", min_count=1)
    assert split_words("Non-greasy, SPF 50!") == ["non", "-", "greasy", ",", "spf", "50", "!"]
    assert en.decode(en.encode_caption("Deep  moisture")) == "deep moisture"


def test_long_caption_keeps_eos_after_ten_tokens(zh):
    ids = zh.encode_caption("深层补水持久保湿深层补水")  # 12 characters
    assert len(ids) == 12 and ids[0] == SOS and ids[-1] == EOS
    assert zh.decode(ids) == "深层补水持久保湿深层"


def test_decode_stops_at_eos_and_skips_specials(zh):
    ids = [SOS, zh.word2int["补"], PAD, zh.word2int["水"], EOS, zh.word2int["深"]]
    assert zh.decode(ids) == "补水"


def test_unknown_characters_map_to_unk(zh):
    assert zh.ids("补X") == [zh.word2int["补"], UNK]
    assert zh.decode(zh.ids("补X")) == "补<unk>"


def test_min_count_and_frequency_order():
    tok = Tokenizer.build(["aab", "ac"], mode="char", min_count=2)
    assert list(tok.word2int)[5:] == ["a"]  # b and c seen once
    tok = Tokenizer.build(["aab", "bc", "b"], mode="char", min_count=1)
    assert list(tok.word2int)[5:] == ["b", "a", "c"]


def test_save_load_release_files_and_infer_mode(tmp_path, zh):
    zh.save(tmp_path)
    word2int = json.loads((tmp_path / "word2int.json").read_text("utf-8"))
    int2word = json.loads((tmp_path / "int2word.json").read_text("utf-8"))
    assert word2int["<eos>"] == 3 and int2word["3"] == "<eos>" and int2word[str(word2int["补"])] == "补"
    loaded = Tokenizer.load(tmp_path)
    assert loaded.mode == "char" and loaded.word2int == zh.word2int
    Tokenizer.build(["deep hydration"], mode="word", min_count=1).save(tmp_path / "en")
    assert Tokenizer.load(tmp_path / "en").mode == "word"


def test_bad_vocabulary_is_refused():
    with pytest.raises(ValueError, match="<pad> to 1"):
        Tokenizer({"<unk>": 0, "<pad>": 2, "<sos>": 1, "<eos>": 3, "<mask>": 4})


def test_guess_mode():
    assert guess_mode(["深层补水"]) == "char"
    assert guess_mode(["deep hydration"]) == "word"


def test_a_vocabulary_grows_by_frequent_new_tokens_and_keeps_every_id():
    base = Tokenizer.build(["保温杯", "保温壶"], min_count=1)
    added = base.new_tokens(["新品杯", "新款", "新", "独"], min_count=2)
    assert added == ["新"]  # 3 times; 品, 款, 独 once; 杯 known already
    # with a count of one each new token, ties in code-point order
    assert base.new_tokens(["新品杯", "新款", "新", "独"], min_count=1) == ["新", "品", "款", "独"]
    grown = base.extended(["新", "品", "新"])
    assert len(grown) == len(base) + 2 and grown.extends(base) and not base.extends(grown)
    assert all(grown.word2int[t] == i for t, i in base.word2int.items())
    assert grown.decode(grown.encode_caption("新品保温杯")) == "新品保温杯" and UNK in base.encode_caption("新品")
    other = Tokenizer.build(["杯保温壶"], min_count=1)  # the same tokens, other ids: not an extension
    assert set(other.word2int) == set(base.word2int) and not other.extends(base)
    files = grown.vocabulary_files()
    assert Tokenizer.from_vocabulary(json.loads(files["word2int.json"])).word2int == grown.word2int
    assert json.loads(files["int2word.json"])[str(len(base))] == "新"
