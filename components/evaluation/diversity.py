"""Diversity of the captions of an image (SPEC 5).

The generated captions of an image's boxes form a paragraph. Div@1 = distinct unigrams / unigram
tokens; Div@2 = distinct bigrams / unigram tokens, bigrams never crossing a caption boundary;
averaged over images, x 100. Scoring the references the same way gives the "human" ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from components.data.record.tokenizer import split_chars, split_words


def paragraph_diversity(captions: Sequence[Sequence[str]]) -> tuple[float, float]:
    """(Div@1, Div@2) of one image from its captions' tokens, as fractions; (0, 0) when empty."""
    unigrams = [token for caption in captions for token in caption]
    if not unigrams:
        return 0.0, 0.0
    bigrams = {(c[i], c[i + 1]) for c in captions for i in range(len(c) - 1)}
    return len(set(unigrams)) / len(unigrams), len(bigrams) / len(unigrams)


def diversity(paragraphs: Mapping[str, Sequence[str]], mode: str = "char") -> dict[str, float]:
    """``{"Div@1", "Div@2"}`` x 100, averaged over images; ``paragraphs`` maps image id to its captions."""
    split = split_chars if mode == "char" else split_words
    per_image = [paragraph_diversity([split(c) for c in captions]) for captions in paragraphs.values()]
    if not per_image:
        return {"Div@1": 0.0, "Div@2": 0.0}
    return {
        "Div@1": 100.0 * sum(d1 for d1, _ in per_image) / len(per_image),
        "Div@2": 100.0 * sum(d2 for _, d2 in per_image) / len(per_image),
    }
