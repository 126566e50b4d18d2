"""Precision and recall of the grounding and compliance checkers on a labelled set built by injecting
errors into true captions. No Ray, no MLflow, no model.

    python bench/publishing_checks_bench.py                       # data/synthetic, its test split
    python bench/publishing_checks_bench.py --json checks.json

Clean captions: the split's true captions whose every part comes from the info or the box's place
(the synthetic truth sidecar's channels), so they state nothing the info does not. Injected, one error
each, from a seeded generator: an amount changed (its numeral one more), an amount added that the info
does not state, a material, origin or certification added that the info does not state (any term of
the claims table, its group absent from the info), the material in Traditional characters, a brand
swapped for another product's (X官方旗舰 -> Y官方旗舰); a banned term added (any term of the list), the
same in Traditional characters, in full-width or spaced out. A checker is scored on its own errors
against the clean captions. The added terms come from the checkers' own tables (what they recall is
what the tables hold); the brand swaps and the clean captions come from the crawl alone.
Also printed: what the checkers flag among all the split's true captions, and the most common terms.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import unicodedata

from components.data.release.table import ensure_table, read_split
from components.publishing.choice import ungrounded
from components.publishing.claims import brand_claim, claims, default_claim_terms
from components.publishing.compliance import default_terms, prohibited_terms, to_traditional
from components.publishing.grounding import CHINESE_NUMERAL, amounts, chinese_number

CLEAN_CHANNELS = {"info", "loc", "ctx"}
DIGITS = "零一二三四五六七八九"
AMOUNT_ERRORS = {"amount_changed", "amount_added"}
CLAIM_ERRORS = {"material_added", "material_traditional", "origin_added", "certification_added", "brand_swapped"}
GROUNDING_ERRORS = AMOUNT_ERRORS | CLAIM_ERRORS
TERM_ERRORS = {"banned", "banned_traditional", "banned_fullwidth", "banned_spaced"}


def one_more(numeral: str) -> str:
    """The Chinese or Arabic numeral ``numeral`` plus one, written the same way (十二 -> 十三)."""
    if numeral[0].isdigit():
        return str(int(float(numeral)) + 1)
    value = chinese_number(numeral) + 1
    if value < 10:
        return DIGITS[value]
    tens, units = divmod(value, 10)
    if value < 100:
        return ("" if tens == 1 else DIGITS[tens]) + "十" + (DIGITS[units] if units else "")
    return str(value)


def change_amount(caption: str, info: str) -> str | None:
    """``caption`` with its first stated amount one more, or None when it states none."""
    found = amounts(caption)
    if not found:
        return None
    numeral = re.match(rf"\d+(?:\.\d+)?|{CHINESE_NUMERAL}", found[0].text).group(0)
    return caption.replace(numeral, one_more(numeral), 1)


def variants(term: str) -> dict[str, str | None]:
    """The term as it is, in Traditional characters, in full width, spaced out (None: no such variant)."""
    traditional = to_traditional(term)
    return {
        "banned": term,
        "banned_traditional": traditional if traditional != term else None,
        "banned_fullwidth": unicodedata.normalize("NFKC", term).translate(
            {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
        ) if any(c.isascii() for c in term) else None,
        "banned_spaced": " ".join(term) if len(term) > 1 else None,
    }  # fmt: skip


def labelled_set(dataset: str, split: str, seed: int) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(examples ``(caption, info, label)`` with label ``clean`` or the injected error, all true captions)."""
    rng = random.Random(seed)
    truth = {}
    with open(f"{dataset}/truth.jsonl", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            row = json.loads(line)
            truth[row["image_id"]] = row["boxes"]
    terms = [t.term for t in default_terms()]
    entries = read_split(dataset, split)
    brands = sorted({b.text for e in entries for c in json.loads(e["record"])["ocr_txts"] if (b := brand_claim(c))})
    examples, every = [], []
    for entry in entries:
        record = json.loads(entry["record"])
        info = record["info"]
        for box in truth[entry["image_id"]]:
            caption = box["shown"]
            every.append((caption, info))
            if not {part[1] for part in box["parts"]} <= CLEAN_CHANNELS:
                continue
            examples.append((caption, info, "clean"))
            changed = change_amount(caption, info)
            if changed and changed != caption:
                examples.append((changed, info, "amount_changed"))
            added = f"{rng.choice(['3', '五', '12', '两'])}{rng.choice(['瓶', '克', '毫升', '件'])}"
            if not {(a.value, a.unit) for a in amounts(added)} & {(a.value, a.unit) for a in amounts(info)}:
                examples.append((caption + added, info, "amount_added"))
            for label, term in variants(rng.choice(terms)).items():
                if term:
                    examples.append((term + caption if rng.random() < 0.5 else caption + term, info, label))
            examples += claim_errors(caption, info, brands, rng)
    return examples, every


def claim_errors(caption: str, info: str, brands: list[str], rng: random.Random) -> list[tuple[str, str, str]]:
    """``caption`` with a material, origin or certification the info lacks added, and its brand swapped."""
    stated = {c.group for c in claims(info)}
    out = []
    for kind in ("material", "origin", "certification"):
        options = [t.term for t in default_claim_terms() if t.kind == kind and t.group not in stated]
        term = rng.choice(options)
        out.append((term + caption if rng.random() < 0.5 else caption + term, info, f"{kind}_added"))
        if kind == "material" and (traditional := to_traditional(term)) != term:
            out.append((traditional + caption, info, "material_traditional"))
    brand = brand_claim(caption)
    if brand is not None:
        other = rng.choice([b for b in brands if b not in info])
        out.append((caption.replace(brand.text, other, 1), info, "brand_swapped"))
    return out


def scores(examples, flagged, positive_labels) -> dict[str, float]:
    tp = sum(1 for (_, _, label), f in zip(examples, flagged, strict=True) if f and label in positive_labels)
    fp = sum(1 for (_, _, label), f in zip(examples, flagged, strict=True) if f and label == "clean")
    fn = sum(1 for (_, _, label), f in zip(examples, flagged, strict=True) if not f and label in positive_labels)
    return {"precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn), "tp": tp, "fp": fp, "fn": fn}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="data/synthetic", help="a synthetic dataset with its truth sidecar")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    ensure_table(args.dataset)
    examples, every = labelled_set(args.dataset, args.split, args.seed)
    kept = examples
    for_grounding = [e for e in kept if e[2] == "clean" or e[2] in GROUNDING_ERRORS]
    for_compliance = [e for e in kept if e[2] == "clean" or e[2] in TERM_ERRORS]
    result = {
        "examples": collections.Counter(label for _, _, label in kept),
        "grounding": scores(for_grounding, [bool(ungrounded(c, i)) for c, i, _ in for_grounding], GROUNDING_ERRORS),
        "grounding_by_error": {
            label: sum(bool(ungrounded(c, i)) for c, i, lab in for_grounding if lab == label)
            / max(1, sum(lab == label for _, _, lab in for_grounding))
            for label in sorted(GROUNDING_ERRORS)
        },
        "compliance": scores(for_compliance, [bool(prohibited_terms(c)) for c, _, _ in for_compliance], TERM_ERRORS),
        "true_captions": len(every),
        "true_flagged_grounding": collections.Counter(
            reason for c, i in every for reason in ungrounded(c, i)[:1]).most_common(5),
        "true_flagged_compliance": collections.Counter(
            t.term for c, _ in every for t in prohibited_terms(c)[:1]).most_common(5),
    }  # fmt: skip
    print(
        f"labelled set ({args.dataset}, {args.split}): " + ", ".join(f"{k} {v}" for k, v in result["examples"].items())
    )
    for name in ("grounding", "compliance"):
        s = result[name]
        counts = f"tp {s['tp']}, fp {s['fp']}, fn {s['fn']}"
        print(f"{name:>10}: precision {s['precision']:.3f}  recall {s['recall']:.3f}  ({counts})")
    print("grounding recall by error: " + ", ".join(f"{k} {v:.3f}" for k, v in result["grounding_by_error"].items()))
    grounded, terms = result["true_flagged_grounding"], result["true_flagged_compliance"]
    print(f"all {result['true_captions']} true captions: grounding flags {sum(n for _, n in grounded)} ({grounded}), ")
    print(f"compliance flags {sum(n for _, n in terms)} ({terms})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, ensure_ascii=False, indent=1)
    return result


if __name__ == "__main__":
    main()
