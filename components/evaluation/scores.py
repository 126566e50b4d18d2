"""Caption accuracy through pycocoevalcap's scorers (the field's reference code, not a reimplementation).

Chinese is scored on characters (no PTB tokenizer), English on words; one reference per box; all
boxes of the split scored at once (CIDEr's document frequencies come from the whole set).
"""

from __future__ import annotations

from collections.abc import Mapping

from components.data.tokenizer import split_chars, split_words


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
    """CIDEr-D x 100 (the paper's scale) over every box at once."""
    from pycocoevalcap.cider.cider import Cider

    if not references:
        return 0.0
    score, _ = Cider().compute_score(*_inputs(references, predictions, mode))
    return 100.0 * float(score)
