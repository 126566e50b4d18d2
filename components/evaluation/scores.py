"""Caption accuracy through pycocoevalcap's scorers (the field's reference code, not a reimplementation).

Chinese is scored on characters (no PTB tokenizer), English on words; one reference per box; all
boxes of the split scored at once (CIDEr's document frequencies come from the whole set). Scores are
reported x 100, as in the paper.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping

from components.data.record.tokenizer import split_chars, split_words
from components.errors import DependencyError

METRICS = ("BLEU@1", "BLEU@2", "BLEU@3", "BLEU@4", "METEOR", "CIDEr")


def scoring_text(text: str, mode: str) -> str:
    """The space-separated tokens the scorers read: characters (``char``) or words (``word``)."""
    return " ".join(split_chars(text) if mode == "char" else split_words(text))


def _inputs(references: Mapping[str, str], predictions: Mapping[str, str], mode: str):
    if set(references) != set(predictions):
        missing = sorted(set(references) ^ set(predictions))[:3]
        raise ValueError(f"references and predictions must cover the same boxes; differ at {missing}")
    gts = {k: [scoring_text(references[k], mode)] for k in references}
    res = {k: [scoring_text(predictions[k], mode)] for k in references}
    return gts, res


def cider(references: Mapping[str, str], predictions: Mapping[str, str], mode: str = "char") -> float:
    """CIDEr-D x 100 over every box at once."""
    from pycocoevalcap.cider.cider import Cider

    if not references:
        return 0.0
    score, _ = Cider().compute_score(*_inputs(references, predictions, mode))
    return 100.0 * float(score)


def cider_per_box(
    references: Mapping[str, str], predictions: Mapping[str, str], mode: str = "char"
) -> dict[str, float]:
    """Each box's CIDEr-D x 100, the document frequencies taken from every reference at once: the
    corpus score is their mean, so sums over any subset of boxes compare two models on that subset."""
    from pycocoevalcap.cider.cider import Cider

    if not references:
        return {}
    gts, res = _inputs(references, predictions, mode)
    _, per_box = Cider().compute_score(gts, res)
    return {key: 100.0 * float(value) for key, value in zip(gts, per_box, strict=True)}


def caption_scores(
    references: Mapping[str, str], predictions: Mapping[str, str], mode: str = "char", meteor: bool = True
) -> dict[str, float]:
    """BLEU@1..4, METEOR (needs Java) and CIDEr, x 100, keyed as in ``METRICS``."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if not references:
        return dict.fromkeys(METRICS, 0.0)
    gts, res = _inputs(references, predictions, mode)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU@{n + 1}": 100.0 * float(b) for n, b in enumerate(bleu)}
    if meteor:
        if shutil.which("java") is None:
            raise DependencyError("METEOR needs Java: apt-get install -y default-jre-headless (or pass meteor=False)")
        from pycocoevalcap.meteor.meteor import Meteor

        scorer = Meteor()  # a Java subprocess, ended when the scorer is garbage collected
        scores["METEOR"] = 100.0 * float(scorer.compute_score(gts, res)[0])
        del scorer
    scores["CIDEr"] = 100.0 * float(Cider().compute_score(gts, res)[0])
    return scores
