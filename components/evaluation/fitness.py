"""Do captions fit their place? Length against box aspect ratio, and caption types (SPEC 5, paper Fig. 3-4).

- Mean caption length per aspect-ratio bin (long side / short side), for the generated captions and
  the ground truth; it should rise almost linearly.
- Caption types: k-means (k = 4) over sentence embeddings of the ground-truth captions; generated
  captions are assigned to the same clusters. The embedding is TF-IDF over character (Chinese) or
  word (English) n-grams reduced by truncated SVD (latent semantic analysis): it needs no download,
  which a pretrained sentence encoder would.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ASPECT_EDGES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, math.inf)


@dataclass(frozen=True)
class AspectBin:
    low: float
    high: float
    boxes: int
    generated_length: float
    reference_length: float

    @property
    def label(self) -> str:
        return f"{self.low:g}+" if math.isinf(self.high) else f"{self.low:g}-{self.high:g}"


def length_by_aspect(aspects: Sequence[float], generated: Sequence[int], references: Sequence[int]) -> list[AspectBin]:
    """Mean generated and reference caption lengths per aspect-ratio bin (empty bins left out)."""
    aspects_array = np.asarray(aspects, dtype=float)
    rows = []
    for low, high in zip(ASPECT_EDGES[:-1], ASPECT_EDGES[1:], strict=True):
        inside = (aspects_array >= low) & (aspects_array < high)
        if inside.any():
            rows.append(
                AspectBin(
                    low,
                    high,
                    int(inside.sum()),
                    float(np.asarray(generated)[inside].mean()),
                    float(np.asarray(references)[inside].mean()),
                )
            )
    return rows


def length_aspect_correlation(aspects: Sequence[float], lengths: Sequence[int]) -> float:
    """Pearson correlation of caption length with aspect ratio (0 when either is constant)."""
    if len(aspects) < 2 or np.std(aspects) == 0 or np.std(lengths) == 0:
        return 0.0
    return float(np.corrcoef(aspects, lengths)[0, 1])


def length_aspect_figure(bins: Sequence[AspectBin], unit: str = "characters"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    x = range(len(bins))
    axis.plot(x, [b.reference_length for b in bins], marker="o", label="ground truth")
    axis.plot(x, [b.generated_length for b in bins], marker="s", label="generated")
    axis.set_xticks(list(x), [b.label for b in bins])
    axis.set(
        xlabel="box aspect ratio (long side / short side)",
        ylabel=f"mean caption length ({unit})",
        title="caption length against box shape",
    )
    axis.legend()
    figure.tight_layout()
    return figure


def format_aspect_table(bins: Sequence[AspectBin]) -> str:
    lines = ["| aspect ratio | boxes | generated length | ground-truth length |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {b.label} | {b.boxes} | {b.generated_length:.2f} | {b.reference_length:.2f} |" for b in bins]
    return "\n".join(lines)


class CaptionTypes:
    """k-means clusters of ground-truth captions, to which generated captions are assigned."""

    def __init__(self, mode: str = "char", clusters: int = 4, dimensions: int = 32, seed: int = 0):
        self.mode, self.clusters, self.dimensions, self.seed = mode, clusters, dimensions, seed

    def fit(self, captions: Sequence[str]) -> CaptionTypes:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        analyzer = "char" if self.mode == "char" else "word"
        self.vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=(1, 2), sublinear_tf=True)
        features = self.vectorizer.fit_transform(captions)
        self.svd = TruncatedSVD(
            n_components=max(2, min(self.dimensions, features.shape[1] - 1)), random_state=self.seed
        )
        self.kmeans = KMeans(n_clusters=self.clusters, n_init=10, random_state=self.seed)
        self.svd.fit(features)
        labels = self.kmeans.fit_predict(self._embed_features(features))
        self.examples = [
            [
                text
                for text, _ in Counter(c for c, label in zip(captions, labels, strict=True) if label == k).most_common(
                    3
                )
            ]
            for k in range(self.clusters)
        ]
        return self

    def _embed_features(self, features) -> np.ndarray:
        embedded = self.svd.transform(features)
        return embedded / np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-12)

    def embed(self, captions: Sequence[str]) -> np.ndarray:
        return self._embed_features(self.vectorizer.transform(captions))

    def assign(self, captions: Sequence[str]) -> np.ndarray:
        return self.kmeans.predict(self.embed(captions))


def type_agreement(reference_types: Sequence[int], generated_types: Sequence[int]) -> float:
    """Share of boxes whose generated caption falls in the type of its reference."""
    if not len(reference_types):
        return 0.0
    return float(np.mean(np.asarray(reference_types) == np.asarray(generated_types)))
