"""The fluency filter: a character n-gram model, its calibration on unseen phrasing, saving it (no Ray)."""

import math
import random

import pytest

from components.data.ingest.fluency import (
    CharNgram,
    FluencyFilter,
    calibrate,
    filter_report,
    fit_calibrated,
    load_ngram,
    save_ngram,
    scrambled,
)

PHRASES = ["深层补水", "持久保湿", "清爽不油腻", "敏感肌可用", "温和不刺激", "补水保湿", "水润保湿", "深层清洁"]


def test_probabilities_sum_to_one_and_unseen_characters_are_possible():
    model = CharNgram.fit(PHRASES)
    total = sum(model.probability("\x02\x02深", c) for c in set("".join(PHRASES)) | {"\x03"})
    assert 0.9 < total <= 1.0 + 1e-9  # what is left goes to characters never seen
    assert model.probability("\x02\x02", "龘") > 0


def test_real_phrasing_scores_above_the_same_characters_scrambled():
    model = CharNgram.fit(PHRASES * 5)
    rng = random.Random(0)
    for phrase in PHRASES:
        assert model.score(phrase) > model.score(scrambled(phrase, rng))
    assert scrambled("补补", rng) == "补补"  # nothing else to shuffle into


def test_calibration_lets_the_target_share_of_held_out_captions_through():
    model = CharNgram.fit(PHRASES)
    held_out = ["深层保湿", "清爽补水", "温和清洁", "敏感肌保湿"] * 5
    threshold = calibrate(model, held_out, target=0.95)
    passed = sum(model.score(t) >= threshold for t in held_out) / len(held_out)
    assert passed >= 0.95
    report = filter_report(FluencyFilter(model, threshold), held_out)
    assert report["fluency_pass_rate_unseen"] == passed and report["fluency_held_out"] == 20
    assert 0.0 <= report["fluency_drop_rate_scrambled"] <= 1.0


def test_fit_calibrated_sets_the_threshold_on_texts_the_model_never_saw(tmp_path):
    captions = [
        f"{a}{b}" for a in ("深层", "持久", "温和", "清爽", "天然") for b in ("补水", "保湿", "清洁", "修护")
    ] * 3
    model, threshold, report = fit_calibrated(captions, seed=0)
    assert set(report) == {
        "fluency_threshold",
        "fluency_pass_rate_unseen",
        "fluency_drop_rate_scrambled",
        "fluency_held_out",
    }
    assert report["fluency_held_out"] == 6 and math.isfinite(threshold)  # a tenth of the 20 texts, 3 times each
    assert all(model.score(c) >= threshold for c in captions)  # the kept model has seen every caption
    save_ngram(model, threshold, str(tmp_path / "fluency.json"), report)
    loaded, loaded_threshold, loaded_report = load_ngram(str(tmp_path / "fluency.json"))
    assert loaded_threshold == threshold and loaded_report == report
    assert loaded.score("深层补水") == pytest.approx(model.score("深层补水"))


def test_the_least_expected_character_gives_away_a_clipped_or_merged_caption():
    captions = [f"{a}{b}推荐" for a in ("深层", "持久", "温和", "清爽") for b in ("补水", "保湿", "清洁", "修护")]
    unseen, clipped, merged = "温和保湿推荐", "深层补水推", "深层补水推荐持久保湿推荐"
    captions = [c for c in captions if c != unseen] * 3
    surprise, mean = CharNgram.fit(captions), CharNgram.fit(captions, scoring="mean")
    # an unseen combination of known parts is as fluent as a seen caption to the surprise score ...
    assert surprise.score(unseen) > surprise.score(clipped) + 3 and surprise.score(unseen) > surprise.score(merged) + 3
    # ... while the mean log probability dilutes the one unexpected character over the whole caption
    assert abs(mean.score(merged) - mean.score(unseen)) < 1 and mean.score(unseen) - mean.score(clipped) < 2


def test_a_model_saved_before_the_surprise_score_keeps_its_mean(tmp_path):
    model = CharNgram.fit(PHRASES, scoring="mean")
    values = model.to_json()
    del values["scoring"]  # what fluency.json held before
    old = CharNgram.from_json(values)
    assert old.scoring == "mean" and old.score("深层补水") == pytest.approx(model.score("深层补水"))
    with pytest.raises(ValueError, match="scoring must be one of surprise, mean"):
        CharNgram(scoring="max")
