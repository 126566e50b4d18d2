"""Grounding of claims: the materials, origins, certifications and brands a caption states that the
product info does not.

The terms are kept as data (``claims.tsv`` beside this file: each term's kind, its group and the
article it answers to). Chinese terms count as whole words of jieba's segmentation, with every term
of the table in its dictionary, in jieba's search mode (a long word also gives the shorter words it is
made of, so 鸭绒被 claims 鸭绒): 棉 is a claim in 纯棉T恤 but not in 棉花糖 or 铜锣烧. Terms that are
mostly figures of speech stay out of the table (黄金 of 黄金配方, 黄金周). Latin terms count as whole
words. A claim is grounded when the info states a term of the same group (全棉 grounds 纯棉).
A brand cue (官方旗舰, 旗舰店, 出品, official ...) makes the caption text before it a brand claim:
麦兰官方旗舰 claims the brand 麦兰, which must be in the info. Caption and info are both read after
NFKC, Traditional-to-Simplified and case folding.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from components.publishing.compliance import simplified

CLAIMS_FILE = Path(__file__).with_name("claims.tsv")
KINDS = ("material", "origin", "certification", "brand_cue")
LATIN = re.compile(r"[0-9a-z][0-9a-z.\-]*")


@dataclass(frozen=True)
class ClaimTerm:
    term: str  # folded (``simplified``)
    kind: str
    group: str
    source: str


@dataclass(frozen=True)
class Claim:
    """A claim a text makes: what it says (a term, or the brand before a cue), its kind and group."""

    text: str
    kind: str  # material, origin, certification or brand
    group: str


def read_claim_terms(path: Path = CLAIMS_FILE) -> tuple[ClaimTerm, ...]:
    """The table (header ``term kind group source``), every term folded; ``ValueError`` naming the line."""
    rows = [line for line in path.read_text("utf-8").splitlines() if line.strip() and not line.startswith("#")]
    header, *body = rows
    if header.split("\t") != ["term", "kind", "group", "source"]:
        raise ValueError(f"{path}: the header must be 'term<TAB>kind<TAB>group<TAB>source' (got {header!r})")
    terms = []
    for number, line in enumerate(body, start=2):
        fields = line.split("\t")
        if len(fields) != 4 or fields[1] not in KINDS or not fields[0].strip():
            shape = "'term<TAB>kind<TAB>group<TAB>source'"
            raise ValueError(f"{path}: data line {number} must be {shape}, its kind one of {', '.join(KINDS)}")
        terms.append(ClaimTerm(simplified(fields[0].strip()), fields[1], fields[2], fields[3]))
    return tuple(terms)


@functools.cache
def default_claim_terms() -> tuple[ClaimTerm, ...]:
    return read_claim_terms()


def _is_latin(term: str) -> bool:
    return term.isascii()


@functools.cache
def _segmenter(terms: tuple[ClaimTerm, ...]):
    """A jieba tokenizer of its own (not jieba's global one) that knows every Chinese term as a word."""
    import jieba

    logging.getLogger("jieba").setLevel(logging.WARNING)  # it logs its dictionary loading at INFO
    tokenizer = jieba.Tokenizer()
    for term in terms:
        if not _is_latin(term.term):
            tokenizer.add_word(term.term)
    return tokenizer


def words(text: str, terms: tuple[ClaimTerm, ...] | None = None) -> list[str]:
    """``text`` folded and cut into words: jieba's for Chinese, whole Latin words and numbers otherwise."""
    terms = default_claim_terms() if terms is None else terms
    folded = simplified(text)
    cut = _segmenter(terms).lcut_for_search(folded, HMM=False)  # 鸭绒被 also gives 鸭绒
    latin = LATIN.findall(folded)
    return [w for w in cut if w.strip() and not w.isascii()] + latin


def claims(text: str, terms: tuple[ClaimTerm, ...] | None = None) -> list[Claim]:
    """Every material, origin and certification ``text`` states, and the brand before a brand cue."""
    terms = default_claim_terms() if terms is None else terms
    present = set(words(text, terms))
    found = [Claim(t.term, t.kind, t.group) for t in terms if t.kind != "brand_cue" and t.term in present]
    brand = brand_claim(text, terms)
    return found + ([brand] if brand is not None else [])


def brand_claim(text: str, terms: tuple[ClaimTerm, ...] | None = None) -> Claim | None:
    """The text before the first brand cue (麦兰 of 麦兰官方旗舰), if it has two characters or more."""
    terms = default_claim_terms() if terms is None else terms
    folded = simplified(text)
    cues = sorted((t.term for t in terms if t.kind == "brand_cue"), key=len, reverse=True)
    first = min((i for cue in cues if (i := _find_word(folded, cue)) >= 0), default=-1)
    brand = folded[:first].strip(" -·|") if first > 0 else ""
    return Claim(brand, "brand", "brand") if len(brand) >= 2 else None  # 大 of 大品牌 names no brand


def _find_word(text: str, term: str) -> int:
    """Where ``term`` starts in ``text`` (a Latin term as a whole word), or -1."""
    if not _is_latin(term):
        return text.find(term)
    match = re.search(rf"(?<![0-9a-z]){re.escape(term)}(?![0-9a-z])", text)
    return match.start() if match else -1


def ungrounded_claims(caption: str, info: str, terms: tuple[ClaimTerm, ...] | None = None) -> list[Claim]:
    """The claims ``caption`` makes that ``info`` does not (empty: every claim is grounded)."""
    terms = default_claim_terms() if terms is None else terms
    stated = claims(info, terms)
    groups = {c.group for c in stated if c.kind != "brand"}
    folded_info = simplified(info)
    missing = []
    for claim in claims(caption, terms):
        grounded = claim.text in folded_info if claim.kind == "brand" else claim.group in groups
        if not grounded:
            missing.append(claim)
    return missing
