"""The pure parts of scheduled retraining: the data gate, run keys, gate attempts, replay, the paired
bootstrap and the promotion decision; and the lock on a local disk."""

import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from components.config import RetrainSection, load_job_config
from components.data.ingest.partitions import IngestResult
from components.data.release.format import ImageRecord
from components.errors import ConfigError, RetrainLocked
from components.retraining.comparison import Interval, decide, paired_gain
from components.retraining.gate import data_figures, gate_reasons
from components.retraining.lock import Holder, acquire
from components.retraining.replay import replay_ids
from components.retraining.state import count_failure, run_key, waiting_for_a_person

LIMITS = RetrainSection(min_new_images=2, max_rejection_rate=0.5, caption_chars=(2, 10), max_oov_share=0.02)


def ingest_result(captions, *, lines=10, rejected=None, duplicates=None, oov=0.0):
    result = IngestResult("d", "v0", "v1", {"crawl_date=2026-11-20": "k"}, {}, {})
    result.stages = Counter(lines=lines)
    result.rejected = Counter(rejected or {})
    result.new_records = [ImageRecord(f"p{i}", "info", [], [None] * len(c), c) for i, c in enumerate(captions)]
    result.duplicates_of = duplicates or {}
    result.oov_share = oov
    return result


def test_good_new_data_passes_the_gate():
    figures = data_figures(ingest_result([["保温杯", "大容量"], ["真空隔热"]], rejected={"near_duplicate": 6}), [])
    assert figures.new_images == 2 and figures.rejection_rate == 0.0  # duplicates are not bad input
    assert figures.mean_caption_chars == pytest.approx(10 / 3)
    assert gate_reasons(figures, LIMITS) == []


def test_every_gate_reason_is_named_with_its_figures():
    result = ingest_result(
        [["这是一个特别特别长的说明文字啊"]],
        rejected={"bad_json": 5, "too_few_captions": 1, "duplicate_product": 2},
        duplicates={
            "p9": ("duplicate_image", "tst-001"),
            "p8": ("duplicate_product", "trn-004"),
            "p7": ("near_duplicate", "val-002"),
        },
        oov=0.05,
    )
    figures = data_figures(result, ["tst-001", "val-002"])
    assert figures.near_fixed == ["val-002"]  # dropped by dedup, allowed
    reasons = gate_reasons(figures, LIMITS)
    assert len(reasons) == 5
    assert reasons[0] == "1 new usable images, fewer than 2"
    assert reasons[1] == "rejection rate 0.60 above 0.50 (bad_json 5, too_few_captions 1 of 10 lines)"
    assert reasons[2] == "mean caption length 15.00 characters outside [2, 10]"
    assert reasons[3].startswith("5.00% of the new caption characters stay outside the vocabulary after it grew")
    assert reasons[4] == "1 images repeat the fixed val/test images (tst-001)"


def test_run_key_follows_partitions_and_champion():
    key = run_key({"a": "k1", "b": "k2"}, "3")
    assert key == run_key({"b": "k2", "a": "k1"}, "3")
    assert len({key, run_key({"a": "k1", "b": "k9"}, "3"), run_key({"a": "k1", "b": "k2"}, "4")}) == 3
    assert run_key({"a": "k1"}, None) != run_key({"a": "k1"}, "1")


def test_gate_attempts_count_up_and_park_a_partition_until_it_changes():
    attempts = {}
    for night in ("1", "2"):  # the same crawl on the same champion: the same run key, started anew
        attempts = count_failure(attempts, {"p": "k1"}, ["too few"], "r", night)
    assert attempts["p"]["attempts"] == 2 and waiting_for_a_person(attempts, {"p": "k1"}, 3) == {}
    assert count_failure(attempts, {"p": "k1"}, ["too few"], "r", "2") == attempts  # a rerun after a crash
    attempts = count_failure(attempts, {"p": "k1"}, ["too few"], "r", "3")
    waiting = waiting_for_a_person(attempts, {"p": "k1", "q": "k5"}, 3)
    assert list(waiting) == ["p"] and "failed the data gate 3 times (too few)" in waiting["p"]
    assert "--retry p" in waiting["p"]
    assert waiting_for_a_person(attempts, {"p": "k2"}, 3) == {}  # its files changed: tried again
    assert count_failure(attempts, {"p": "k2"}, ["x"], "r", "4")["p"]["attempts"] == 1


def test_replay_takes_a_seeded_sample_of_the_old_in_order_then_every_new():
    old, new = [f"o{i}" for i in range(10)], ["n0", "n1", "n2"]
    ids = replay_ids(old, new, 1.0, seed=0)
    assert ids[-3:] == new and len(ids) == 6
    assert ids[:3] == sorted(ids[:3], key=old.index)  # dataset order
    assert ids == replay_ids(old, new, 1.0, seed=0) and ids != replay_ids(old, new, 1.0, seed=1)
    assert replay_ids(old, new, 10.0, seed=0) == old + new  # at most all of the old
    assert replay_ids(old, new, 0.0, seed=0) == new


def rows(predictions, references):
    return [
        {"image_id": f"i{n // 2}", "box": n % 2, "reference": ref, "prediction": pred}
        for n, (pred, ref) in enumerate(zip(predictions, references, strict=True))
    ]


REFERENCES = ["保温杯", "大容量", "真空隔热", "轻便携带", "不锈钢", "防漏设计", "一键开盖", "长效保温"] * 3


def test_paired_bootstrap_of_equal_models_is_zero():
    same = rows(REFERENCES, REFERENCES)
    gain = paired_gain(same, same, "char", samples=200, confidence=0.9)
    assert (gain.estimate, gain.low, gain.high) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_sees_a_clearly_better_candidate():
    wrong = ["毛巾" for _ in REFERENCES]
    gain = paired_gain(rows(REFERENCES, REFERENCES), rows(wrong, REFERENCES), "char", samples=500, confidence=0.95)
    assert gain.low > 0 and gain.high >= gain.estimate >= gain.low and gain.estimate > 100
    mixed = [r if n % 3 == 0 else "毛巾" for n, r in enumerate(REFERENCES)]  # right on a third of the boxes
    partial = paired_gain(rows(mixed, REFERENCES), rows(wrong, REFERENCES), "char", samples=500, confidence=0.95)
    assert partial.high - partial.low > 0 and 0 < partial.estimate < gain.estimate
    with pytest.raises(ValueError, match="different boxes"):
        paired_gain(rows(REFERENCES, REFERENCES), rows(wrong[:-2], REFERENCES[:-2]), "char", samples=10, confidence=0.9)


def metrics(cider, div2, bleu4):
    return {"BLEU@1": 0.0, "BLEU@4": bleu4, "METEOR": 0.0, "CIDEr": cider, "Div@1": 0.0, "Div@2": div2}


def test_decision_needs_the_interval_above_the_margin_and_the_guardrails():
    assert decide(metrics(1, 1, 1), None, None, LIMITS).promote  # the first model
    clear = Interval(3.0, 1.0, 5.0, 0.95, 1000)
    decision = decide(metrics(50, 40, 10), metrics(47, 40.5, 10.2), clear, LIMITS, champion_version="4")
    assert decision.promote and decision.reasons[0] == "CIDEr gain +3.00 [95% CI +1.00, +5.00] clears the margin 0"
    assert decision.tags()["retrain_interval"] == "[1.0000, 5.0000]" and decision.tags()["retrain_compared_with"] == "4"
    noisy = Interval(3.0, -1.0, 7.0, 0.95, 1000)
    assert not decide(metrics(50, 40, 10), metrics(47, 40, 10), noisy, LIMITS).promote
    collapsed = decide(metrics(60, 30, 10), metrics(47, 40, 10), clear, LIMITS)
    assert not collapsed.promote and "Div@2 30.00 vs 40.00 (beyond the allowed drop of 2)" in collapsed.reasons
    strict = RetrainSection(min_gain=2.0)
    assert not decide(metrics(50, 40, 10), metrics(47, 40, 10), clear, strict).promote
    assert type(decision).from_dict(json.loads(json.dumps(decision.as_dict()))) == decision


def test_a_candidate_failing_more_publishing_checks_than_the_champion_is_refused():
    clear = Interval(3.0, 1.0, 5.0, 0.95, 1000)
    champion = {**metrics(47, 40, 10), "publish_fit_rate": 0.95, "publish_compliance_violation_rate": 0.02}
    close = {**metrics(50, 40, 10), "publish_fit_rate": 0.945, "publish_compliance_violation_rate": 0.02}
    assert decide(close, champion, clear, LIMITS).promote  # half a point fewer fit: within the allowed rise of 1
    worse = {**close, "publish_compliance_violation_rate": 0.05}
    refused = decide(worse, champion, clear, LIMITS)
    assert not refused.promote
    assert "compliance violations 5.0% vs 2.0% of the captions (beyond the allowed rise of 1 points)" in refused.reasons
    assert "fit violations 5.5% vs 5.0% of the captions (within the allowed rise of 1 points)" in refused.reasons
    unjudged = decide(worse, metrics(47, 40, 10), clear, LIMITS)  # a champion scored without checks: no guardrail
    assert unjudged.promote and not any("violations" in r for r in unjudged.reasons)


def test_retraining_is_configured_before_anything_runs():
    with pytest.raises(ConfigError, match="tracking.gate_metric.*CIDEr"):
        load_job_config("tiny", ["tracking.gate_metric=BLEU@4"], task="retrain")
    with pytest.raises(ConfigError, match="retrain.caption_chars"):
        load_job_config("tiny", ["retrain.caption_chars=[5, 2]"], task="retrain")
    assert load_job_config("tiny", ["tracking.gate_metric=BLEU@4"], task="pretrain").tracking.gate_metric == "BLEU@4"


# -- the lock -----------------------------------------------------------------------------------------
def test_a_held_lock_refuses_a_second_retrain_until_released(tmp_path):
    where = str(tmp_path / "retrain" / "lock.json")
    first = acquire(where, lease_s=60, purpose="retrain of crawls")
    with pytest.raises(RetrainLocked, match=f"retrain of crawls \\(pid {os.getpid()} on") as refused:
        acquire(where, lease_s=60, purpose="another")
    assert refused.value.exit_code == 75
    first.release()
    assert not (tmp_path / "retrain" / "lock.json").exists()
    acquire(where, lease_s=60, purpose="again").release()


def test_a_dead_holders_lock_is_taken_over_and_the_old_holder_knows(tmp_path):
    where = tmp_path / "lock.json"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    first = acquire(str(where), lease_s=60, purpose="first")
    first._stop.set()  # no renewals: a holder that stopped
    stale = json.loads(where.read_text())
    where.write_text(json.dumps({**stale, "pid": dead_pid}))  # its process is gone
    second = acquire(str(where), lease_s=60, purpose="second")
    assert json.loads(where.read_text())["purpose"] == "second"
    assert not first.renew() and first.lost
    second.release()


def test_a_lock_whose_lease_ran_out_is_stale_and_a_live_one_is_not():
    now = time.time()
    other_host = Holder("o", "another-host", 1, "p", now - 100, now - 100)
    assert other_host.stale(lease_s=60) and not other_host.stale(lease_s=600)
    here = Holder("o", os.uname().nodename, os.getpid(), "p", now, now)
    assert not here.stale(lease_s=60)


def test_renewal_keeps_a_lock_alive(tmp_path):
    lock = acquire(str(tmp_path / "lock.json"), lease_s=0.2, purpose="renewing")
    before = lock.holder.renewed
    time.sleep(0.3)
    assert lock.holder.renewed > before and not lock.lost  # renewed by its thread every lease/4
    lock.release()


def test_an_ingest_grows_the_vocabulary_by_the_frequent_new_characters():
    """New records whose characters the dataset's vocabulary lacks: those seen at least
    ``vocabulary_min_count`` times are appended (old ids unchanged) and the version carries them; the
    OOV share is what stays unknown (the rare ones)."""
    from components.data.ingest.partitions import IngestResult, grow_vocabulary, oov_share
    from components.data.record.boxes import Box
    from components.data.record.tokenizer import Tokenizer
    from components.data.release.format import ImageRecord

    base = Tokenizer.build(["保温杯保温杯", "保温壶"], min_count=1)
    box = Box(0.1, 0.1, 0.4, 0.3)

    def record(number: int, caption: str) -> ImageRecord:
        return ImageRecord(f"n{number}", "保温杯", (box,), (box,), (caption,))

    records = [record(1, "新品杯"), record(2, "新款壶"), record(3, "新独杯")]  # 新 3x, 品 款 独 once
    result = IngestResult("d", "0", "0", {}, {}, {})
    result.new_records = records
    assert oov_share(records, base) == 6 / 9
    grow_vocabulary(result, base, min_count=2)
    assert result.vocabulary_added == ["新"] and result.vocabulary.extends(base)
    assert oov_share(records, result.vocabulary) == 3 / 9  # 品 款 独 stay unknown
    assert result.vocabulary.word2int["新"] == len(base)  # appended: every old id keeps its token
    unchanged = IngestResult("d", "0", "0", {}, {}, {})
    unchanged.new_records = [record(4, "保温杯")]
    grow_vocabulary(unchanged, base, min_count=1)
    assert unchanged.vocabulary is None and unchanged.vocabulary_added == []
