"""Publishing rates over many boxes (pure): the share of captions that pass each check, for the chosen
captions and for each box's most likely candidate (before the choice). Evaluation logs them; the
retrain gate refuses a candidate whose violation rates exceed the champion's.

    publish_fit_rate                    the caption fits its box at a legible size and contrast
    publish_read_back_rate              OCR reads back what was drawn
    publish_grounding_violation_rate    the caption states an amount the info does not
    publish_compliance_violation_rate   the caption makes an absolute or prohibited claim
    publish_ready_rate                  the caption passes every enabled check
    publish_chose_other_rate            a less likely candidate was chosen

Each ``publish_first_*`` rate is the same for the most likely candidate. A rate is logged only for a
check that ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.publishing.choice import CHECKS

RATE_NAMES = {
    "compliance": "compliance_violation_rate",
    "grounding": "grounding_violation_rate",
    "fit": "fit_rate",
    "read_back": "read_back_rate",
}
PASS_RATES = ("fit", "read_back")  # reported as the share passing; the other checks as the share violating


def publishing_rates(verdicts: Sequence[Mapping[str, Any]], checks: Sequence[str]) -> dict[str, float]:
    """The rates of the chosen captions and of the most likely candidates, from per-box verdicts in
    ``Verdict.as_dict`` form; nothing for no boxes."""
    if not verdicts:
        return {}
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"checks: unknown {unknown}; choose from {list(CHECKS)}")
    count = len(verdicts)
    rates: dict[str, float] = {}
    for stage, failed in (("", "failed"), ("first_", "first_failed")):
        for check in (c for c in CHECKS if c in checks):
            failing = sum(check in v[failed] for v in verdicts) / count
            rates[f"publish_{stage}{RATE_NAMES[check]}"] = 1.0 - failing if check in PASS_RATES else failing
        rates[f"publish_{stage}ready_rate"] = sum(not v[failed] for v in verdicts) / count
    rates["publish_chose_other_rate"] = sum(int(v["rank"]) > 0 for v in verdicts) / count
    return rates


def violation_rates(rates: Mapping[str, float]) -> dict[str, float]:
    """Per check that ran, the share of chosen captions failing it (the retrain gate's guardrails),
    keyed by the check's name."""
    out = {}
    for check, name in RATE_NAMES.items():
        value = rates.get(f"publish_{name}")
        if value is not None:
            out[check] = 1.0 - value if check in PASS_RATES else value
    return out
