"""Does a caption read like one? The released pipeline's fluency filter, with a pluggable scorer.

The default scorer is a character n-gram model (interpolated absolute discounting) trained on the
dataset's training captions and saved with the dataset. Its score is the caption's least expected
character: the lowest, over the caption's characters and its end, of log2 P(character | the two
before it) / P(character). A caption of known phrasing in a new combination scores like a seen one;
a caption cut short (ending where captions never end) or run into its neighbour (one caption's end
followed by another's start) has one character nothing prepared, and a mean over the characters
would dilute it (measured on the synthetic crawl: the mean caught 21% of clipped captions, this
score 77%). Files written before this score keep theirs (``scoring: mean``, the mean log2
probability per character). A causal language model can be plugged in where its weights are on
disk or behind a URI (``CausalLmScorer``; never a hub download).

The threshold is calibrated on phrasing the scorer never saw, so that real but new phrasing passes
(a filter that drops it starves retraining): the training captions' distinct texts are split
80 / 10 / 10 into texts to fit on, texts to set the threshold on (90% of them pass) and texts to
report on, with the same texts scrambled (characters shuffled) to show what the filter still drops.
Training captions carry OCR noise of their own (a few percent): a threshold that let 95% of them
through would sit among the noise (measured on the synthetic crawl, whose noise is labelled: at 90%,
99% of clean unseen captions pass and 85-93% of scrambles are dropped; at 95%, 80-89%). The model
kept is then fitted on every training caption, with that threshold.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from components import storage
from components.errors import ConfigError, DependencyError

START, END = "\x02", "\x03"
SCORINGS = ("surprise", "mean")  # the least expected character (default); the mean log2 probability
PASS_TARGET = 0.9  # the share of held-out training captions the calibrated threshold lets through


class Scorer(Protocol):
    def score(self, text: str) -> float:
        """Higher is more fluent (a mean log probability per character or token)."""


class CharNgram:
    """A character n-gram model: ``P(c | context)`` discounted at each order and interpolated with
    the next lower order, down to add-one unigrams (so unseen characters have a probability too)."""

    def __init__(
        self, order: int = 3, discount: float = 0.75, counts: list[dict] | None = None, scoring: str = "surprise"
    ):
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got '{scoring}'")
        self.order, self.discount, self.scoring = order, discount, scoring
        # counts[n][context of n characters][next character] for n = 0 .. order - 1
        self.counts: list[dict[str, dict[str, int]]] = counts or [{} for _ in range(order)]
        self._totals = [{ctx: sum(nxt.values()) for ctx, nxt in level.items()} for level in self.counts]

    @classmethod
    def fit(cls, texts: Iterable[str], order: int = 3, discount: float = 0.75, scoring: str = "surprise") -> CharNgram:
        counts: list[dict[str, Counter]] = [defaultdict(Counter) for _ in range(order)]
        for text in texts:
            padded = START * (order - 1) + text + END
            for i in range(order - 1, len(padded)):
                for n in range(order):
                    counts[n][padded[i - n : i]][padded[i]] += 1
        return cls(order, discount, [{ctx: dict(nxt) for ctx, nxt in level.items()} for level in counts], scoring)

    def probability(self, context: str, char: str) -> float:
        probability = self.unigram(char)
        for n in range(1, self.order):
            history = context[-n:]
            following = self.counts[n].get(history)
            if not following:
                break
            total = self._totals[n][history]
            seen = max(following.get(char, 0) - self.discount, 0.0) / total
            probability = seen + self.discount * len(following) / total * probability
        return probability

    def unigram(self, char: str) -> float:
        """P(char) with no context (add-one: an unseen character has a probability too)."""
        unigrams = self.counts[0].get("", {})
        return (unigrams.get(char, 0) + 1) / (self._totals[0].get("", 0) + len(unigrams) + 1)

    def score(self, text: str) -> float:
        padded = START * (self.order - 1) + text + END
        positions = range(self.order - 1, len(padded))
        if self.scoring == "mean":
            return sum(math.log2(self.probability(padded[:i], padded[i])) for i in positions) / len(positions)
        return min(math.log2(self.probability(padded[:i], padded[i]) / self.unigram(padded[i])) for i in positions)

    def to_json(self) -> dict:
        return {
            "kind": "char-ngram",
            "order": self.order,
            "discount": self.discount,
            "scoring": self.scoring,
            "counts": self.counts,
        }

    @classmethod
    def from_json(cls, values: dict) -> CharNgram:
        return cls(values["order"], values["discount"], values["counts"], values.get("scoring", "mean"))


class CausalLmScorer:
    """A causal language model from a local folder or a URI (copied locally first), in Hugging Face's
    format; loaded with ``local_files_only``: nothing is downloaded from a hub. Needs ``transformers``."""

    def __init__(self, location: str):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as err:
            raise DependencyError(
                f"a causal LM fluency model needs transformers: pip install transformers ({err})"
            ) from err
        folder = location
        if storage.is_uri(location):
            folder = tempfile.mkdtemp(prefix="caponimage-lm-")
            storage.copy_dir(location, folder)
        if not (Path(folder) / "config.json").is_file():
            raise ConfigError(
                "ingest.fluency", f"{location} is not a causal LM folder (no config.json); nothing is downloaded"
            )
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()

    def score(self, text: str) -> float:
        ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
        bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        ids = self.torch.cat([self.torch.tensor([[bos]]), ids], dim=1)  # the first token is scored too
        with self.torch.no_grad():
            logits = self.model(ids).logits[:, :-1].float()
        logs = self.torch.log_softmax(logits, dim=-1).gather(2, ids[:, 1:, None])[0, :, 0]
        return float(logs.mean()) / math.log(2)


@dataclass(frozen=True)
class FluencyFilter:
    scorer: Scorer
    threshold: float

    def __call__(self, text: str) -> bool:
        return self.scorer.score(text) >= self.threshold


def calibrate(scorer: Scorer, held_out: Sequence[str], target: float = PASS_TARGET) -> float:
    """The threshold that lets ``target`` of ``held_out`` fluent captions through."""
    scores = np.asarray([scorer.score(t) for t in held_out], dtype=np.float64)
    return float(np.quantile(scores, 1.0 - target, method="lower"))


def fit_calibrated(captions: Sequence[str], seed: int = 0) -> tuple[CharNgram, float, dict[str, float]]:
    """(the n-gram model of every caption, the threshold set on unseen texts, the report on others)."""
    texts = sorted(set(captions))
    random.Random(seed).shuffle(texts)
    tenth = max(1, len(texts) // 10)
    calibration, evaluation = set(texts[:tenth]), set(texts[tenth : 2 * tenth])
    known = [c for c in captions if c not in calibration and c not in evaluation]
    held_out = CharNgram.fit(known or captions)
    threshold = calibrate(held_out, [c for c in captions if c in calibration])
    report = filter_report(FluencyFilter(held_out, threshold), [c for c in captions if c in evaluation], seed)
    return CharNgram.fit(captions), threshold, report


def scrambled(text: str, rng: random.Random) -> str:
    """The same characters in another order (a different one whenever the text allows it)."""
    chars = list(text)
    for _ in range(10):
        rng.shuffle(chars)
        if "".join(chars) != text:
            break
    return "".join(chars)


def filter_report(check: FluencyFilter, fluent: Sequence[str], seed: int = 0) -> dict[str, float]:
    """How the filter treats fluent captions it never saw, and the same captions scrambled."""
    rng = random.Random(seed)
    shuffled = [scrambled(t, rng) for t in fluent if len(set(t)) > 1]
    return {
        "fluency_threshold": check.threshold,
        "fluency_pass_rate_unseen": float(np.mean([check(t) for t in fluent])) if fluent else float("nan"),
        "fluency_drop_rate_scrambled": float(np.mean([not check(t) for t in shuffled])) if shuffled else float("nan"),
        "fluency_held_out": float(len(fluent)),
    }


def save_ngram(model: CharNgram, threshold: float, location: str, report: dict[str, float]) -> None:
    values = {**model.to_json(), "threshold": threshold, "report": report}
    storage.write_bytes(location, json.dumps(values, ensure_ascii=False).encode("utf-8"))


def load_ngram(location: str) -> tuple[CharNgram, float, dict[str, float]]:
    """(model, threshold, the report made when it was calibrated)."""
    values = json.loads(storage.read_bytes(location).decode("utf-8"))
    return CharNgram.from_json(values), float(values["threshold"]), values.get("report", {})
