"""Choice: per box, the most likely candidate caption that passes every enabled check, else the most
likely one with its failed checks named; and the image with the chosen captions written in.

Checks run cheapest first and stop at the first candidate that passes them all:

    compliance   no absolute or prohibited claim (``compliance.prohibited_terms``)
    grounding    no amount, material, origin, certification or brand the product info does not state
                 (``grounding.ungrounded_amounts``, ``claims.ungrounded_claims``)
    fit          a legible size and contrast in the box (``fit.fit_caption``), on the cleaned background
    read_back    the OCR engine reads back what was drawn (``readback.read_back``; needs ``fit``)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from components.publishing.background import clean_background
from components.publishing.claims import ungrounded_claims
from components.publishing.compliance import prohibited_terms
from components.publishing.contrast import WCAG_AA
from components.publishing.fit import MIN_FONT_FRACTION, Bounds, Fit, draw_fit, fit_caption, min_legible_px
from components.publishing.grounding import ungrounded_amounts
from components.publishing.readback import LineReader, read_back

CHECKS = ("compliance", "grounding", "fit", "read_back")


@dataclass(frozen=True)
class Verdict:
    """One candidate caption judged: its rank among the box's candidates, its log-probability, the checks
    it failed (in ``CHECKS`` order) and why, and how it fits the box. A chosen caption also says which
    checks the box's most likely candidate failed (``first_failed``): what choosing among candidates
    mended."""

    caption: str
    log_prob: float
    rank: int
    failed: tuple[str, ...]
    reasons: dict[str, str] = field(default_factory=dict)
    fit: Fit | None = None
    read: str | None = None  # what OCR read back, where it ran
    first_failed: tuple[str, ...] = ()  # the checks the most likely candidate failed (rank 0: ``failed``)

    @property
    def passed(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: what ``caption.py`` writes and the pyfunc model returns per box."""
        out: dict[str, Any] = {
            "caption": self.caption,
            "log_prob": round(self.log_prob, 4),
            "rank": self.rank,
            "passed": self.passed,
            "failed": list(self.failed),
            "reasons": dict(self.reasons),
            "first_failed": list(self.first_failed),
        }
        if self.fit is not None:
            out["fit"] = {"verdict": self.fit.verdict, "font_px": self.fit.font_px, "min_px": self.fit.min_px,
                          "lines": list(self.fit.lines), "colour": list(self.fit.colour),
                          "contrast": self.fit.contrast}  # fmt: skip
        if self.read is not None:
            out["read_back"] = self.read
        return out


def ungrounded(caption: str, info: str) -> list[str]:
    """What ``caption`` states that ``info`` does not: amounts as written, claims with their kind."""
    stated = [a.text for a in ungrounded_amounts(caption, info)]
    return stated + [f"{c.text} ({c.kind})" for c in ungrounded_claims(caption, info)]


class Publisher:
    """The checks a caption must pass to be published, with their settings; ``reader`` is the OCR
    engine (one per process: load it once and reuse it), needed only where ``read_back`` is checked."""

    def __init__(
        self,
        *,
        checks: Sequence[str] = CHECKS,
        reader: LineReader | None = None,
        min_font_fraction: float = MIN_FONT_FRACTION,
        min_contrast: float = WCAG_AA,
    ):
        unknown = sorted(set(checks) - set(CHECKS))
        if unknown:
            raise ValueError(f"checks: unknown {unknown}; choose from {list(CHECKS)}")
        if "read_back" in checks and ("fit" not in checks or reader is None):
            raise ValueError("checks: read_back needs the fit check and an OCR reader")
        self.checks = tuple(c for c in CHECKS if c in checks)
        self.reader, self.min_font_fraction, self.min_contrast = reader, min_font_fraction, min_contrast

    def judge(
        self, background: Image.Image, bounds: Bounds, caption: str, info: str, lang: str, *, rank=0, log_prob=0.0
    ) -> Verdict:
        """``caption`` for the box ``bounds`` on ``background`` (already cleaned) against every check."""
        reasons: dict[str, str] = {}
        if "compliance" in self.checks and (terms := prohibited_terms(caption)):
            reasons["compliance"] = ", ".join(f"{t.term} ({t.source.split(':')[0]})" for t in terms)
        if "grounding" in self.checks and (missing := ungrounded(caption, info)):
            reasons["grounding"] = "not in the info: " + ", ".join(missing)
        fit = read = None
        if "fit" in self.checks:
            min_px = min_legible_px(background.height, self.min_font_fraction)
            fit = fit_caption(background, bounds, caption, lang, min_px=min_px, min_contrast=self.min_contrast)
            if not fit.fits:
                reasons["fit"] = fit.verdict
        if "read_back" in self.checks and fit is not None:
            canvas = background.copy()
            result = read_back(self.reader, canvas, draw_fit(canvas, bounds, fit, lang), caption)
            read = result.text
            if not result.passed:
                reasons["read_back"] = f"read {result.text!r}"
        failed = tuple(c for c in CHECKS if c in reasons)
        return Verdict(caption, float(log_prob), rank, failed, reasons, fit, read, failed if rank == 0 else ())

    def choose(
        self, background: Image.Image, bounds: Bounds, candidates: Sequence[tuple[str, float]], info: str, lang: str
    ) -> Verdict:
        """The first candidate (best first) that passes every check, else the first with its failures."""
        if not candidates:
            raise ValueError("a box needs at least one candidate caption")
        first = None
        for rank, (caption, log_prob) in enumerate(candidates):
            verdict = self.judge(background, bounds, caption, info, lang, rank=rank, log_prob=log_prob)
            first = first or verdict
            if verdict.passed:
                return replace(verdict, first_failed=first.failed)
        return first

    def publish(
        self,
        image: Image.Image,
        boxes: Sequence[Bounds],
        candidates: Sequence[Sequence[tuple[str, float]]],
        info: str,
        lang: str,
    ) -> tuple[list[Verdict], Image.Image]:
        """Per box its chosen caption's verdict, and the image as it would be published: old text removed
        from the caption boxes, each chosen caption written in where it has a legible size (a box whose
        caption cannot be set legibly is left clean; its verdict says why)."""
        background = clean_background(image, boxes)
        verdicts = [self.choose(background, b, c, info, lang) for b, c in zip(boxes, candidates, strict=True)]
        published = background.copy()
        for bounds, verdict in zip(boxes, verdicts, strict=True):
            fit = verdict.fit or fit_caption(published, bounds, verdict.caption, lang, min_px=1)
            if fit.font_px >= fit.min_px:
                draw_fit(published, bounds, fit, lang)
        return verdicts, published
