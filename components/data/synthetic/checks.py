"""What the synthetic crawl must be, measured: its shape against the paper's Table 1, its matching
negatives' levels by construction, and what the fluency filter makes of its captions and of its
labelled OCR-like noise. (The fourth check, the oracle's ceilings, is
``components.evaluation.oracle``.) Pure functions of planned images: no pixels, no training.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence

from components.data.ingest.cleaning import core, normalise, text_rejection
from components.data.ingest.dedup import DedupIndex
from components.data.ingest.fluency import FluencyFilter, fit_calibrated, scrambled
from components.data.record.tokenizer import split_chars
from components.data.synthetic.generate import Generated
from components.data.synthetic.grammar import apply_noise
from components.data.synthetic.lexicon import Lexicon
from components.data.synthetic.truth import BoxTruth, ImageTruth, fits_product, same_place, same_slot

NEAR_DUPLICATE_SHARE = 0.7


def skewness(values: Sequence[float]) -> float:
    mean, spread = statistics.fmean(values), statistics.pstdev(values)
    return statistics.fmean((v - mean) ** 3 for v in values) / spread**3 if spread else 0.0


def shape(by_split: Mapping[str, Sequence[Generated]]) -> dict[str, float]:
    """The paper's Table 1 figures of a planned release, and how its splits overlap."""
    records = [g.record for split in by_split.values() for g in split]
    per_image = [len(r.captions) for r in records]
    lengths = [len(split_chars(c)) for r in records for c in r.captions]
    train = [g.record for g in by_split.get("train", ())]
    seen = {c for r in train for c in r.captions}
    val = [c for g in by_split.get("val", ()) for c in g.record.captions]
    index = DedupIndex(NEAR_DUPLICATE_SHARE)
    for r in train:
        index.add(r.image_id, r.captions)
    test = [g.record for g in by_split.get("test", ())]
    characters = Counter(ch for r in train for text in (*r.captions, r.info) for ch in split_chars(text))
    return {
        "images": len(records),
        "captions_per_image": statistics.fmean(per_image),
        "captions_per_image_min": min(per_image),
        "captions_per_image_max": max(per_image),
        "captions_per_image_median": statistics.median(per_image),
        "captions_per_image_skewness": skewness(per_image),
        "caption_length": statistics.fmean(lengths),
        "caption_length_min": min(lengths),
        "caption_length_max": max(lengths),
        "caption_length_mode": Counter(lengths).most_common(1)[0][0],
        "info_length": statistics.fmean(len(split_chars(r.info)) for r in records),
        "categories": len({g.item.category for split in by_split.values() for g in split}),
        "distinct_caption_share": len({c for r in records for c in r.captions}) / len(lengths),
        "val_seen_in_train": sum(c in seen for c in val) / len(val) if val else float("nan"),
        "test_near_duplicates": sum(index.near_duplicate_of(r.image_id, r.captions) is not None for r in test)
        / max(1, len(test)),
        "vocabulary": sum(1 for n in characters.values() if n >= 2),
    }


def level_rejections(truths: Sequence[ImageTruth], lexicon: Lexicon, seed: int = 0) -> dict[str, float]:
    """For one negative of each level per box (I: a caption of another image; II: of another box of the
    same image; III: of the box's chain neighbour; never the box's own text), the share rejected by a
    product check (does the caption claim what this product is and shows?), then also by a slot check
    (is it for this kind of place?), then also by a rank check (this row of the column, this marker)."""
    rng = random.Random(seed)
    checks = {
        "product": lambda neg, box, image: not fits_product(neg, image.item, lexicon, image.has_column),
        "slot": lambda neg, box, image: not same_slot(neg, box),
        "rank": lambda neg, box, image: not same_place(neg, box),
    }
    rejected: dict[tuple[int, str], list[bool]] = {}
    for i, image in enumerate(truths):
        for b, box in enumerate(image.boxes):
            for level, negative in enumerate(_negatives(truths, i, b, rng), 1):
                if negative is None:
                    continue
                caught = False
                for name, check in checks.items():
                    caught = caught or check(negative, box, image)
                    rejected.setdefault((level, name), []).append(caught)
    return {f"level{level}_{name}": statistics.fmean(v) for (level, name), v in sorted(rejected.items())}


def _negatives(truths: Sequence[ImageTruth], i: int, b: int, rng: random.Random) -> list[BoxTruth | None]:
    image, box = truths[i], truths[i].boxes[b]

    def pick(pool: list[BoxTruth]) -> BoxTruth | None:
        pool = [p for p in pool if p.text != box.text]
        return rng.choice(pool) if pool else None

    other = truths[rng.choice([k for k in range(len(truths)) if k != i])] if len(truths) > 1 else None
    chain = [image.boxes[n] for n in (b - 1, b + 1) if 0 <= n < len(image.boxes)]
    return [
        pick(list(other.boxes)) if other else None,
        pick([x for n, x in enumerate(image.boxes) if n != b]),
        pick(chain),
    ]


def fluency(
    train_captions: Sequence[str], held_out: Sequence[ImageTruth], lexicon: Lexicon, seed: int = 0
) -> dict[str, float]:
    """The fluency filter calibrated on the training captions (``fit_calibrated``, its own report
    included): the share of held-out captions it never saw that it passes, the share of the same
    captions scrambled that it drops, and the share of labelled OCR noise it catches (with the
    cleaning rules, as ingest applies them: too long, or not fluent and not part of the product info)
    on held-out captions run into their chain neighbour (merged) or clipped (truncated)."""
    model, threshold, report = fit_calibrated(train_captions, seed)
    fluent = FluencyFilter(model, threshold)
    rng = random.Random(seed)
    seen = set(train_captions)
    unseen = sorted({box.text for image in held_out for box in image.boxes} - seen)
    scrambles = [scrambled(t, rng) for t in unseen if len(set(t)) > 1]
    caught: dict[str, list[bool]] = {"merged": [], "truncated": []}
    for image in held_out:
        info = core(normalise(image.item.info(lexicon)))
        for b, box in enumerate(image.boxes):
            following = image.boxes[b + 1].text if b + 1 < len(image.boxes) else None
            for kind in caught:
                noisy = normalise(apply_noise(kind, box.text, following, lexicon, rng))
                if noisy == box.text:
                    continue  # the kind could not apply (no neighbour, too short)
                rule = text_rejection(noisy)
                caught[kind].append(rule is not None or (core(noisy) not in info and not fluent(noisy)))
    merged, truncated = caught["merged"], caught["truncated"]
    return {
        **{f"calibration_{k.removeprefix('fluency_')}": v for k, v in report.items()},
        "unseen_passed": statistics.fmean(map(fluent, unseen)) if unseen else float("nan"),
        "scrambled_dropped": 1 - statistics.fmean(map(fluent, scrambles)) if scrambles else float("nan"),
        "merged_caught": statistics.fmean(merged) if merged else float("nan"),
        "truncated_caught": statistics.fmean(truncated) if truncated else float("nan"),
        "noise_caught": statistics.fmean(merged + truncated) if merged or truncated else float("nan"),
    }
