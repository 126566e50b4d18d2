"""Grounding: amounts a caption states that the product info does not.

A caption that says 500毫升 of a product whose info says 350毫升, or 两斤 where the info says 500克
differently, misleads; so does a bare number the info never mentions. Amounts are read in Arabic
digits (with decimals) or Chinese numerals (十二, 两百, 一千五百, 三万), followed by a unit of the table
kept as data (``units.tsv`` beside this file: each unit's canonical unit and factor, so 1千克 meets
1000克 and 0.5升 meets 500ml). Chinese numerals count only before a unit: alone they are words
(一起, 万能). A stated amount is grounded when the info states the same amount in the same canonical
unit; a bare Arabic number, when the info holds that number in any unit.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from components.publishing.compliance import simplified

UNITS_FILE = Path(__file__).with_name("units.tsv")
CHINESE_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
CHINESE_SCALES = {"十": 10, "百": 100, "千": 1000}
CHINESE_NUMERAL = "[零〇一二两三四五六七八九十百千万]+"


@dataclass(frozen=True)
class Amount:
    """An amount a text states: its value in ``unit`` (canonical; empty for a bare number) and the text."""

    value: float
    unit: str
    text: str


def chinese_number(text: str) -> int:
    """The value of a Chinese numeral: 十二 = 12, 两百 = 200, 一千五百 = 1500, 三万五千 = 35000, and the
    spoken short forms 一百五 = 150, 一万二 = 12000 (a last digit right after 百, 千 or 万 counts in the
    next smaller place)."""
    total = section = digit = 0
    previous_scale = 0  # the scale of the character just read, 0 after a digit
    for char in text:
        if char in CHINESE_DIGITS:
            digit, last_scale, previous_scale = CHINESE_DIGITS[char], previous_scale, 0
        elif char in CHINESE_SCALES:
            section += (digit or 1) * CHINESE_SCALES[char]
            digit = last_scale = 0
            previous_scale = CHINESE_SCALES[char]
        elif char == "万":
            total += (section + digit or 1) * 10000
            section = digit = last_scale = 0
            previous_scale = 10000
        else:
            raise ValueError(f"{text!r} is not a Chinese numeral ({char!r})")
    if digit and last_scale >= 100 and not previous_scale:
        digit *= last_scale // 10
    return total + section + digit


def read_units(path: Path = UNITS_FILE) -> dict[str, tuple[str, float]]:
    """unit -> (canonical unit, factor), from the tab-separated table (header ``unit canonical factor``)."""
    rows = [line for line in path.read_text("utf-8").splitlines() if line.strip() and not line.startswith("#")]
    header, *body = rows
    if header.split("\t") != ["unit", "canonical", "factor"]:
        raise ValueError(f"{path}: the header must be 'unit<TAB>canonical<TAB>factor' (got {header!r})")
    units = {}
    for number, line in enumerate(body, start=2):
        fields = line.split("\t")
        try:
            unit, canonical, factor = fields
            units[_fold(unit)] = (canonical, float(factor))
        except ValueError as err:
            raise ValueError(f"{path}: data line {number} must be 'unit<TAB>canonical<TAB>number'") from err
    return units


@functools.cache
def _pattern(units: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(u) for u in sorted(units, key=len, reverse=True))
    # a Latin unit must not run on into a word: "5 grams" is 5 g, but "5 girls" states no grams
    return re.compile(rf"(\d+(?:\.\d+)?|{CHINESE_NUMERAL})\s*(?:({alternatives})(?![a-z]))?")


@functools.cache
def default_units() -> dict[str, tuple[str, float]]:
    return read_units()


def _fold(text: str) -> str:
    return simplified(text)  # 兩瓶 and 两瓶, ５００ＭＬ and 500ml read alike


def amounts(text: str, units: dict[str, tuple[str, float]] | None = None) -> list[Amount]:
    """Every amount ``text`` states, in order."""
    units = default_units() if units is None else units
    found = []
    for match in _pattern(tuple(units)).finditer(_fold(text)):
        number, unit = match.group(1), match.group(2)
        arabic = number[0].isdigit()
        if not arabic and unit is None:
            continue  # a Chinese numeral alone is a word, not an amount
        value = float(number) if arabic else float(chinese_number(number))
        canonical, factor = units[unit] if unit else ("", 1.0)
        found.append(Amount(round(value * factor, 6), canonical, match.group(0).strip()))
    return found


def ungrounded_amounts(caption: str, info: str, units: dict[str, tuple[str, float]] | None = None) -> list[Amount]:
    """The amounts ``caption`` states that ``info`` does not (empty: every amount is grounded)."""
    stated = amounts(info, units)
    with_unit = {(a.value, a.unit) for a in stated}
    values = {a.value for a in stated}
    return [
        a for a in amounts(caption, units) if ((a.value, a.unit) not in with_unit if a.unit else a.value not in values)
    ]
