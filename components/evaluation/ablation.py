"""The paper's Table 2 and Table 3 as variants of one model, and the markdown table comparing them.

Table 2: no-locations, no-info, no-image, baseline (no neighbours, generation only), context
(neighbours, generation only), full (neighbours, generation + progressive matching). Table 3: the
matching task's negative levels and strategy, from "no matching" (= context) to "I+II+III
progressive" (= full). Every variant has the same budget: the same pre-training steps (matching
variants spend a quarter of them on matching), then the same generation-only fine-tuning, so that a
gain from matching is not a gain from more training. Pure: the flow and the bench run the variants.

On a dataset with a truth sidecar the runs also carry field accuracy (``components.evaluation.fields``)
and the report reads each variant against its own oracle (``components.evaluation.oracle``): the
share of the parts that oracle writes right that the variant writes right (``field_accuracy_all``
over the oracle's). Below ``POWERED`` a variant is reported as underpowered and the orderings it is
in are not ranked: a variant that has not learned what its inputs carry says nothing of them. Input
ablations are judged on V_X field accuracy (the boxes that need the input), CIDEr and Div@2 beside.
"""

from __future__ import annotations

import operator
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.metric_names import CEILING, metric_key

PAPER_STEPS = 200_000  # the paper's pre-training, which its curriculum is written for


@dataclass(frozen=True)
class Variant:
    name: str
    model: dict[str, Any] = field(default_factory=dict)
    negatives: str | None = None  # None: generation only; else the matching schedule
    oracle: str = "full"  # the oracle denied what this variant is denied: its ceiling

    def train_overrides(self, seed: int) -> dict[str, Any]:
        """Pre-training settings: the task mix, the negatives' schedule spread over the run's own
        matching steps (the paper's whole curriculum, easy first), the seed."""
        matching = self.negatives is not None
        return {
            "generation_per_matching": (3, 1) if matching else (1, 0),
            "negatives": self.negatives or "progressive",
            "seed": seed,
            "curriculum_span": PAPER_STEPS,
        }

    @staticmethod
    def finetune_overrides(steps: int) -> dict[str, Any]:
        """Fine-tuning settings, the same for every variant: generation only."""
        return {"generation_per_matching": (1, 0), "steps": steps}


VARIANTS = {
    v.name: v
    for v in (
        Variant("no-locations", {"use_locations": False, "neighbours": "none"}, oracle="no-locations"),
        Variant("no-info", {"use_info": False, "neighbours": "none"}, oracle="no-info"),
        Variant("no-image", {"use_image": False, "neighbours": "none"}, oracle="no-image"),
        Variant("baseline", {"neighbours": "none"}, oracle="baseline"),
        Variant("context", {"neighbours": "top1"}),
        Variant("level1", {"neighbours": "top1"}, "level1"),
        Variant("level12", {"neighbours": "top1"}, "level12"),
        Variant("fixed", {"neighbours": "top1"}, "fixed"),
        Variant("full", {"neighbours": "top1"}, "progressive"),
    )
}

TABLE2 = (
    ("no-locations", "w/o locations"),
    ("no-info", "no-info"),
    ("no-image", "no-image"),
    ("baseline", "baseline"),
    ("context", "context"),
    ("full", "full"),
)
TABLE3 = (
    ("context", "1 no matching"),
    ("level1", "2 Level I"),
    ("level12", "3 I+II (fixed 50/50)"),
    ("fixed", "4 I+II+III fixed 30/40/30"),
    ("full", "5 I+II+III progressive"),
)
# The paper's test-set figures (SPEC 5 and the paper's Tables 2 and 3).
PAPER_CIDER = {
    "no-locations": 95.5,
    "no-info": 125.5,
    "no-image": 147.3,
    "baseline": 287.6,
    "context": 305.5,
    "full": 345.4,
    "level1": 316.46,
    "level12": 329.77,
    "fixed": 335.49,
}
PAPER_DIV2 = {"baseline": 55.0, "context": 60.9, "full": 63.7}
COLUMNS = ("BLEU@1", "BLEU@4", "METEOR", "CIDEr", "Div@1", "Div@2")
# (smaller, relation, larger, metric): the paper's orderings that the synthetic benchmark should reproduce.
ORDERINGS = (
    ("no-locations", "<", "no-info", "CIDEr"),
    ("no-locations", "<", "no-image", "CIDEr"),
    ("no-info", "<", "baseline", "CIDEr"),
    ("no-image", "<", "baseline", "CIDEr"),
    ("baseline", "<", "context", "CIDEr"),
    ("context", "<=", "full", "CIDEr"),
    ("baseline", "<", "context", "Div@2"),
    ("context", "<", "level1", "CIDEr"),
    ("level1", "<", "level12", "CIDEr"),
    ("level12", "<", "fixed", "CIDEr"),
    ("fixed", "<", "full", "CIDEr"),
    # each input ablation where it can be decided: on the boxes that need the input (V_X)
    ("no-info", "<", "baseline", "field_accuracy_info_diag"),
    ("no-image", "<", "baseline", "field_accuracy_image_diag"),
    ("no-locations", "<", "baseline", "field_accuracy_loc_diag"),
    ("baseline", "<", "context", "field_accuracy_ctx_diag"),
    # Table 3's claim about training: matching pre-training raises what needs places and neighbours
    ("context", "<", "full", "field_accuracy_loc_diag"),
    ("context", "<", "full", "field_accuracy_ctx_diag"),
)
FIELD_COLUMNS = tuple(f"field_accuracy_{c}{d}" for d in ("_diag", "") for c in ("info", "image", "loc", "ctx")) + (
    "field_accuracy_all",
)
POWERED = 0.7  # the share of its own ceiling a variant must reach to be ranked
# Metric names on the ablation's parent run: "<variant>_s<seed>_<metric>", with '@' logged as '-'.
_RUN_METRIC = re.compile(r"^(?P<variant>[^/]+)/s(?P<seed>\d+)_(?P<metric>.+)$")
_HUMAN = ("Div@1", "Div@2")
_RELATIONS = {"<": operator.lt, "<=": operator.le}


def run_metric_key(variant: str, seed: int, metric: str) -> str:
    """The parent run's name for one variant's, one seed's metric (read back by ``results_from_metrics``)."""
    return metric_key(variant, f"s{seed}_{metric}")


def ceiling_metric_key(variant: str) -> str:
    """The parent run's name for a variant's ceiling (its oracle's ``field_accuracy_all``)."""
    return metric_key(CEILING, f"{variant}_field_accuracy_all")


def ceilings_from_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The ceilings a parent run logged (``ceiling_metric_key``), by variant."""
    return {name: metrics[key] for name in VARIANTS if (key := ceiling_metric_key(name)) in metrics}


def summarise(results: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """(mean, standard deviation over seeds) of every metric of every variant."""
    out = {}
    for name, runs in results.items():
        keys = set.intersection(*(set(r) for r in runs)) if runs else set()
        out[name] = {
            k: (statistics.fmean(r[k] for r in runs), statistics.stdev(r[k] for r in runs) if len(runs) > 1 else 0.0)
            for k in keys
        }
    return out


def results_from_metrics(
    metrics: Mapping[str, float],
) -> tuple[dict[str, list[dict[str, float]]], dict[str, float], list[int]]:
    """Per-variant, per-seed results, the human row and the seeds, read back from a parent run's metrics.

    Lets the table be rebuilt from a finished ablation without training anything again.
    """
    columns = {c.replace("@", "-"): c for c in (*COLUMNS, *FIELD_COLUMNS)}
    humans = {f"human_{c.replace('@', '-')}": c for c in _HUMAN}
    per_seed: dict[str, dict[int, dict[str, float]]] = {}
    human: dict[str, float] = {}
    for key, value in metrics.items():
        match = _RUN_METRIC.match(key)
        if not match or match["variant"] not in VARIANTS:
            continue
        metric = match["metric"]
        if metric in columns:
            per_seed.setdefault(match["variant"], {}).setdefault(int(match["seed"]), {})[columns[metric]] = value
        elif metric in humans:
            human[humans[metric]] = value
    seeds = sorted({seed for by_seed in per_seed.values() for seed in by_seed})
    results = {name: [by_seed[s] for s in sorted(by_seed)] for name, by_seed in per_seed.items()}
    return results, human, seeds


def _cell(summary: Mapping[str, tuple[float, float]], key: str) -> str:
    if key not in summary:
        return "-"
    mean, spread = summary[key]
    return f"{mean:.1f} ± {spread:.1f}"


def _table_rows(table, summary: Mapping[str, Mapping[str, tuple[float, float]]]) -> list[str]:
    """One markdown row per variant of ``table`` that was run: ours, then the paper's figures."""
    return [
        f"| {label} | "
        + " | ".join(_cell(summary[name], c) for c in COLUMNS)
        + f" | {PAPER_CIDER.get(name, '-')} | {PAPER_DIV2.get(name, '-')} |"
        for name, label in table
        if name in summary
    ]


HOLDS, FAILS, INCONCLUSIVE = "holds", "does NOT hold", "inconclusive"
UNDERPOWERED = "not ranked (underpowered)"


def ceiling_shares(
    results: Mapping[str, Sequence[Mapping[str, float]]], ceilings: Mapping[str, float]
) -> dict[str, float]:
    """Each variant's mean ``field_accuracy_all`` over its own oracle's (``ceilings``, by variant):
    the share of what its inputs carry that it learnt to write. Variants without either are left out."""
    shares = {}
    for name, runs in results.items():
        reached = [r["field_accuracy_all"] for r in runs if "field_accuracy_all" in r]
        if reached and ceilings.get(name):
            shares[name] = statistics.fmean(reached) / ceilings[name]
    return shares


def _shown(metric: str, value: float) -> str:
    return f"{100 * value:.1f}" if metric.startswith("field_accuracy") else f"{value:.1f}"


def check_orderings(
    results: Mapping[str, Sequence[Mapping[str, float]]], shares: Mapping[str, float] | None = None
) -> list[tuple[str, str]]:
    """Each of the paper's orderings with its verdict over paired seeds: it ``holds`` only when it
    holds in every seed, ``does NOT hold`` when it holds in none, else it is ``inconclusive``; an
    ordering with a variant below ``POWERED`` of its ceiling (``shares``) is not ranked."""
    summary, shares = summarise(results), shares or {}
    checks = []
    for low, relation, high, metric in ORDERINGS:
        if metric not in summary.get(low, {}) or metric not in summary.get(high, {}):
            continue
        holds = _RELATIONS[relation]
        per_seed = [holds(a[metric], b[metric]) for a, b in zip(results[low], results[high], strict=False)]
        a, b = _shown(metric, summary[low][metric][0]), _shown(metric, summary[high][metric][0])
        text = f"{low} {relation} {high} on {metric}: {a} vs {b} (in {sum(per_seed)} of {len(per_seed)} seeds)"
        weak = [f"{n} at {100 * shares[n]:.0f}%" for n in (low, high) if shares.get(n, 1.0) < POWERED]
        if weak:
            checks.append((f"{text}; {', '.join(weak)} of its ceiling", UNDERPOWERED))
            continue
        verdict = HOLDS if all(per_seed) else FAILS if not any(per_seed) else INCONCLUSIVE
        checks.append((text, verdict))
    return checks


def field_rows(summary: Mapping[str, Mapping[str, tuple[float, float]]], shares: Mapping[str, float]) -> list[str]:
    """The field-accuracy table: every variant's accuracy on each V_X and over every box (points,
    mean ± sd over seeds) and the share of its own ceiling reached; empty without field metrics."""
    ordered = dict.fromkeys(name for name, _ in (*TABLE2, *TABLE3))  # full sits in both tables: one row
    names = [name for name in ordered if "field_accuracy_all" in summary.get(name, {})]
    if not names:
        return []
    head = ["V_INFO", "V_IMAGE", "V_LOC", "V_CTX", "info", "image", "loc", "ctx", "all parts"]
    lines = [
        "## Field accuracy: what each variant writes of each input",
        "",
        "Points of caption parts written right (`components/evaluation/fields.py`): on V_X, the boxes that "
        "need input X (its oracle denied X is wrong there, the full oracle right), then over every box, and "
        "over every part; then the share of its own oracle's parts it writes (the oracle denied what the "
        f"variant is denied). Below {100 * POWERED:.0f}% a variant is underpowered: not ranked.",
        "",
        "| variant | " + " | ".join(head) + " | of its ceiling |",
        "| --- |" + " ---: |" * (len(head) + 1),
    ]
    for name in names:
        cells = [
            "-" if c not in summary[name] else f"{100 * summary[name][c][0]:.1f} ± {100 * summary[name][c][1]:.1f}"
            for c in FIELD_COLUMNS
        ]
        share = shares.get(name)
        reach = "-" if share is None else f"{100 * share:.0f}%" + (" underpowered" if share < POWERED else "")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {reach} |")
    return [*lines, ""]


def markdown(
    results: Mapping[str, Sequence[Mapping[str, float]]],
    human: Mapping[str, float],
    seeds: Sequence[int],
    command: str,
    setting: str,
    ceilings: Mapping[str, float] | None = None,
) -> str:
    """The report: Tables 2 and 3, field accuracy against each variant's ceiling (``ceilings``: its
    oracle's ``field_accuracy_all``, by variant; where the dataset has a truth), the orderings."""
    summary = summarise(results)
    shares = ceiling_shares(results, ceilings or {})
    head = "| variant | " + " | ".join(COLUMNS) + " | paper CIDEr | paper Div@2 |"
    rule = "| --- |" + " ---: |" * (len(COLUMNS) + 2)
    lines = [
        "# Ablations on the synthetic benchmark",
        "",
        f"Regenerate: `{command}`",
        "",
        setting,
        f"Mean ± standard deviation over seeds {', '.join(map(str, seeds))}; the paper's figures are its "
        "test-set numbers on CapOnImage2M (different data and scale: compare orderings, not values).",
        "",
        "## Table 2: inputs and model variants",
        "",
        head,
        rule,
    ]
    lines += _table_rows(TABLE2, summary)
    lines.append(
        "| human | - | - | - | - | " + f"{human.get('Div@1', float('nan')):.1f} | "
        f"{human.get('Div@2', float('nan')):.1f} | - | 74.2 |"
    )
    lines += ["", "## Table 3: caption-matching pre-training", "", head, rule]
    lines += _table_rows(TABLE3, summary)
    lines += ["", *field_rows(summary, shares)]
    lines += [
        "## The paper's orderings",
        "",
        "Seed by seed (seeds paired): an ordering holds only when it holds in every seed, does NOT hold "
        "when it holds in none, and is inconclusive otherwise; the means over seeds are shown beside "
        "(field accuracy in points). An ordering with an underpowered variant is not ranked.",
        "",
    ]
    lines += [f"- {verdict}: {text}" for text, verdict in check_orderings(results, shares)]
    return "\n".join(lines) + "\n"
