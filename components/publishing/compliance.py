"""Compliance: absolute and prohibited advertising claims, found by a term list kept as data.

The list (``absolute_claims.tsv`` beside this file) names each term's kind and the article of China's
Advertising Law it breaks. Captions and terms are compared after the same normalisation: NFKC (full-width
forms and compatibility characters), Traditional to Simplified Chinese (OpenCC's ``t2s``), case folding
and no whitespace, so "最 佳", a full-width "１００％" and the Traditional "國家級" all meet their term.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from components.data.record.tokenizer import UNK, Tokenizer
from components.errors import DependencyError

TERMS_FILE = Path(__file__).with_name("absolute_claims.tsv")


@dataclass(frozen=True)
class Term:
    """One prohibited term: what it is, its kind (absolute, medical, ...) and the article it breaks."""

    term: str
    kind: str
    source: str


@functools.cache
def _converter(config: str):
    try:
        import opencc
    except ImportError as err:
        raise DependencyError(f"compliance checks need opencc (pip install opencc): {err}") from err
    return opencc.OpenCC(config)


def _to_simplified():
    return _converter("t2s")


def to_traditional(text: str) -> str:
    """``text`` in Traditional characters (OpenCC ``s2t``): the other spelling a term may be written in."""
    return _converter("s2t").convert(text)


def simplified(text: str) -> str:
    """NFKC, Traditional to Simplified, case-folded: the form every check reads a text in."""
    return _to_simplified().convert(unicodedata.normalize("NFKC", text)).casefold()


def normalise(text: str) -> str:
    """``simplified`` with whitespace removed: the form terms are matched in."""
    return "".join(simplified(text).split())


def read_terms(path: Path = TERMS_FILE) -> tuple[Term, ...]:
    """The term list: tab-separated ``term, kind, source`` after a header; ``#`` lines are comments."""
    rows = [line for line in path.read_text("utf-8").splitlines() if line.strip() and not line.startswith("#")]
    header, *body = rows
    if header.split("\t") != ["term", "kind", "source"]:
        raise ValueError(f"{path}: the header must be 'term<TAB>kind<TAB>source' (got {header!r})")
    terms = []
    for number, line in enumerate(body, start=2):
        fields = line.split("\t")
        if len(fields) != 3 or not all(f.strip() for f in fields):
            raise ValueError(f"{path}: data line {number} must have three non-empty tab-separated fields")
        terms.append(Term(normalise(fields[0]), fields[1].strip(), fields[2].strip()))
    return tuple(terms)


@functools.cache
def default_terms() -> tuple[Term, ...]:
    return read_terms()


def prohibited_terms(caption: str, terms: tuple[Term, ...] | None = None) -> list[Term]:
    """The terms ``caption`` contains, in list order; empty for a compliant caption."""
    text = normalise(caption)
    return [term for term in (default_terms() if terms is None else terms) if term.term in text]


def forbidden_sequences(tokenizer: Tokenizer, terms: tuple[Term, ...] | None = None) -> tuple[tuple[int, ...], ...]:
    """Every term (and its Traditional spelling) as the token ids decoding must never complete
    (``components.model.decoding``); a term with a token outside the vocabulary cannot be generated
    and is left out."""
    terms = default_terms() if terms is None else terms
    spellings = {t.term for t in terms} | {to_traditional(t.term) for t in terms}
    sequences = {tuple(tokenizer.ids(text)) for text in spellings if text.strip()}
    return tuple(sorted(s for s in sequences if s and UNK not in s))
