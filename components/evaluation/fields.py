"""Field accuracy: how often a model writes each input's part of a caption right.

The synthetic crawl's sidecar splits every caption into parts, each owned by one input channel
(``components.data.synthetic.grammar``): INFO (the brand, the attribute heads, the category's words),
IMAGE (the colour, finish, marker phrase, column modifier), LOC (the suffixes a box's slot and size
call for), CTX (a column row's join word, told by its neighbours). A whole-split score mixes them;
field accuracy scores each channel's parts apart:

- ``field_accuracy_<channel>``: the share of that channel's parts, over every box, that the predicted
  caption holds;
- ``field_accuracy_<channel>_diag``: the same over V_X, the boxes where the input is *necessary*:
  the oracle denied it writes the caption wrong and the full oracle writes it right. Effects of an
  input are decided there: over the whole split they are diluted by boxes that need no such input;
- ``field_accuracy_all``: every scored part, whoever owns it: the share of what the inputs carry
  that a model writes (against the same figure of an oracle: the share of its ceiling it reaches);
- ``role_accuracy_<role>``: one role's parts (``brand``, ``head``, ``colour``, ...), e.g. whether the
  brand badge copies the brand of the info.

A part is written when its text occurs in the prediction, each occurrence serving one part (longest
parts first), as whole words in English. NOISE parts (a campaign theme, a slogan: never drawn, never
written) are not scored.

Pure and plain: a ``FieldSheet`` holds strings and sets only, so it travels to training workers, where
validation scores with it; it is built where the truth may be read (``components.evaluation.oracle``).
Datasets without a sidecar (CapOnImage2M) have no sheet and no field metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

SCORED_CHANNELS = ("info", "image", "loc", "ctx")  # NOISE is never written, so never scored


@dataclass(frozen=True)
class BoxFields:
    """One box's caption as parts ``(text, channel, role)``, and the channels X whose V_X holds it."""

    parts: tuple[tuple[str, str, str], ...]
    diagnostic: frozenset[str]


@dataclass(frozen=True)
class FieldSheet:
    """The parts of every evaluated box, keyed ``image_id#box`` (the box's index among the record's
    ``ocr_locs``), and the full oracle's caption of each: the split's ceiling."""

    lang: str  # zh: parts are found in characters, en: in words
    boxes: dict[str, BoxFields]
    ceiling: dict[str, str]

    def covering(self, keys) -> FieldSheet:
        """The sheet of only those ``keys`` it has (a validation subset)."""
        keys = [k for k in keys if k in self.boxes]
        return FieldSheet(self.lang, {k: self.boxes[k] for k in keys}, {k: self.ceiling[k] for k in keys})


def written_parts(parts: tuple[tuple[str, str, str], ...], prediction: str, lang: str) -> list[bool]:
    """Whether each part's text occurs in ``prediction``, every occurrence serving one part only;
    longer parts claim theirs first (so a short part is not found inside a longer one's text)."""
    sep = " " if lang == "en" else ""
    remaining = f"{sep}{prediction}{sep}"
    found = [False] * len(parts)
    for i in sorted(range(len(parts)), key=lambda i: -len(parts[i][0])):
        needle = f"{sep}{parts[i][0]}{sep}"
        if parts[i][0] and needle in remaining:
            found[i] = True
            remaining = remaining.replace(needle, f"{sep}\0{sep}", 1)
    return found


def field_counts(sheet: FieldSheet, predictions: Mapping[str, str]) -> Counter:
    """(right, scored) counts under ``(name, "right" | "scored")`` for every field metric, over the
    predicted boxes the sheet has. Counts add over shards; ``field_accuracy`` divides them."""
    counts: Counter = Counter()
    for key, prediction in predictions.items():
        box = sheet.boxes.get(key)
        if box is None:  # an image without a truth (ingested)
            continue
        counts["boxes", "scored"] += 1
        for (_, channel, role), right in zip(box.parts, written_parts(box.parts, prediction, sheet.lang), strict=True):
            if channel not in SCORED_CHANNELS:
                continue
            names = ["field_accuracy_all", f"field_accuracy_{channel}", f"role_accuracy_{role}"]
            if channel in box.diagnostic:
                names.append(f"field_accuracy_{channel}_diag")
            for name in names:
                counts[name, "scored"] += 1
                counts[name, "right"] += right
    return counts


def accuracies(counts: Mapping) -> dict[str, float]:
    """Field metrics from ``field_counts`` (summed over shards): only those with a scored part."""
    names = sorted({name for name, kind in counts if kind == "scored" and name != "boxes"})
    return {name: counts[name, "right"] / counts[name, "scored"] for name in names if counts[name, "scored"]}


def field_accuracy(sheet: FieldSheet, predictions: Mapping[str, str]) -> dict[str, float]:
    """Every field metric of ``predictions`` (keyed ``image_id#box``) on the boxes the sheet has."""
    return accuracies(field_counts(sheet, predictions))


def diagnostic_sizes(sheet: FieldSheet) -> dict[str, int]:
    """How many boxes each V_X holds: a figure to read a ``_diag`` accuracy against."""
    return {c: sum(c in b.diagnostic for b in sheet.boxes.values()) for c in SCORED_CHANNELS}
