"""A dataset summary in the paper's Table 1 terms: images, captions, captions per image, lengths, vocabulary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from components.data.record.rejection import Rejection
from components.data.record.tokenizer import Tokenizer
from components.data.release.format import ImageRecord

EXAMPLES_PER_REASON = 3


@dataclass(frozen=True)
class SplitSummary:
    split: str
    images: int
    captions: int
    captions_per_image: float
    mean_caption_length: float
    min_caption_length: int
    max_caption_length: int
    mean_info_length: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def summarize_split(split: str, records: Sequence[ImageRecord], tokenizer: Tokenizer) -> SplitSummary:
    lengths = [tokenizer.caption_length(c) for r in records for c in r.captions]
    info_lengths = [len(tokenizer.tokenize(r.info)) for r in records]
    n_images, n_captions = len(records), len(lengths)
    return SplitSummary(
        split=split,
        images=n_images,
        captions=n_captions,
        captions_per_image=n_captions / n_images if n_images else 0.0,
        mean_caption_length=sum(lengths) / n_captions if n_captions else 0.0,
        min_caption_length=min(lengths, default=0),
        max_caption_length=max(lengths, default=0),
        mean_info_length=sum(info_lengths) / n_images if n_images else 0.0,
    )


def format_summary(summaries: Sequence[SplitSummary], vocabulary_size: int, unit: str = "chars") -> str:
    """A fixed-width table, one row per split plus the vocabulary size."""
    header = (
        f"{'split':<7}{'images':>9}{'captions':>10}{'caps/img':>10}"
        f"{'len (' + unit + ')':>13}{'min':>5}{'max':>5}{'info len':>10}"
    )
    rows = [header, "-" * len(header)]
    for s in summaries:
        rows.append(
            f"{s.split:<7}{s.images:>9}{s.captions:>10}{s.captions_per_image:>10.2f}"
            f"{s.mean_caption_length:>13.2f}{s.min_caption_length:>5}{s.max_caption_length:>5}"
            f"{s.mean_info_length:>10.1f}"
        )
    rows.append(f"vocabulary: {vocabulary_size} tokens (specials included)")
    return "\n".join(rows)


def format_rejections(rejections: Sequence[Rejection], examples: int = EXAMPLES_PER_REASON) -> str:
    """The rejected records counted by reason, with a few examples each (naming image id and field)."""
    counts = Counter(r.reason for r in rejections)
    lines = [f"rejected: {len(rejections)}"]
    for reason, count in sorted(counts.items()):
        lines.append(f"  {reason:<16}{count:>8}")
        lines += [f"      e.g. {r.error()}" for r in rejections if r.reason == reason][:examples]
    return "\n".join(lines)
