"""Tokenizer and vocabulary (SPEC 2.5).

Chinese captions and info are split into characters; the English synthetic mode splits into words.
The vocabulary is built from the training split, saved as the release's ``word2int.json`` /
``int2word.json`` with the specials ``<unk>``=0, ``<pad>``=1, ``<sos>``=2, ``<eos>``=3, ``<mask>``=4.

A caption is encoded as ``<sos>`` + at most 10 tokens + ``<eos>``: the released code's budget of 10
included both specials and truncated long captions, losing ``<eos>``; here ``<eos>`` always survives.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

SPECIALS = ("<unk>", "<pad>", "<sos>", "<eos>", "<mask>")
UNK, PAD, SOS, EOS, MASK = range(len(SPECIALS))
CAPTION_MAX_TOKENS = 10
CAPTION_LENGTH = CAPTION_MAX_TOKENS + 2  # with <sos> and <eos>
INFO_MAX_TOKENS = 60
MODES = ("char", "word")
VOCABULARY_FILE = "word2int.json"  # the release's vocabulary, beside int2word.json
INVERSE_VOCABULARY_FILE = "int2word.json"

_WORD_PATTERN = re.compile(r"[0-9a-z']+|[^\s0-9a-z']")


def split_chars(text: str) -> list[str]:
    """Characters, whitespace dropped (Chinese has no spaces inside words)."""
    return [c for c in text if not c.isspace()]


def split_words(text: str) -> list[str]:
    """Lower-cased words; punctuation and any non-Latin character stand alone."""
    return _WORD_PATTERN.findall(text.lower())


def guess_mode(texts: Iterable[str]) -> str:
    """``char`` when the texts hold any CJK character, else ``word``."""
    return "char" if any("\u3400" <= c <= "\u9fff" for text in texts for c in text) else "word"


class Tokenizer:
    """Text to ids and back over a fixed vocabulary.

    ``word2int`` must map the five specials to 0..4 and use every id below its size exactly once.
    """

    def __init__(self, word2int: dict[str, int], mode: str = "char"):
        if mode not in MODES:
            raise ValueError(f"tokenizer mode must be one of {MODES}, got '{mode}'")
        for index, special in enumerate(SPECIALS):
            if word2int.get(special) != index:
                raise ValueError(f"vocabulary must map {special} to {index}, got {word2int.get(special)}")
        if sorted(word2int.values()) != list(range(len(word2int))):
            raise ValueError("vocabulary ids must be 0..N-1, each used once")
        self.mode = mode
        self.word2int = dict(word2int)
        self.int2word = {i: w for w, i in word2int.items()}

    # -- building, saving, loading -------------------------------------------------------------
    @classmethod
    def build(cls, texts: Iterable[str], mode: str = "char", min_count: int = 2) -> Tokenizer:
        """A vocabulary of every token seen at least ``min_count`` times, most frequent first."""
        split = split_chars if mode == "char" else split_words
        return cls.from_counts(Counter(token for text in texts for token in split(text)), mode, min_count)

    @classmethod
    def from_counts(cls, counts: Counter, mode: str = "char", min_count: int = 2) -> Tokenizer:
        """The vocabulary ``build`` makes from these token counts."""
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in SPECIALS), key=lambda t: (-counts[t], t)
        )
        word2int = {token: index for index, token in enumerate([*SPECIALS, *kept])}
        return cls(word2int, mode)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.vocabulary_files().items():
            (folder / name).write_bytes(data)

    def vocabulary_files(self) -> dict[str, bytes]:
        """``word2int.json`` and ``int2word.json`` as ``save`` writes them."""
        int2word = {str(i): w for i, w in sorted(self.int2word.items())}
        return {
            VOCABULARY_FILE: json.dumps(self.word2int, ensure_ascii=False, indent=0).encode("utf-8"),
            INVERSE_VOCABULARY_FILE: json.dumps(int2word, ensure_ascii=False, indent=0).encode("utf-8"),
        }

    # -- growing -------------------------------------------------------------------------------
    def new_tokens(self, texts: Iterable[str], min_count: int) -> list[str]:
        """Tokens of ``texts`` this vocabulary lacks, seen at least ``min_count`` times, most frequent first."""
        counts = Counter(token for text in texts for token in self.tokenize(text) if token not in self.word2int)
        return sorted(
            (t for t, c in counts.items() if c >= min_count and t not in SPECIALS), key=lambda t: (-counts[t], t)
        )

    def extended(self, tokens: Iterable[str]) -> Tokenizer:
        """This vocabulary with ``tokens`` it lacks appended: every id it has keeps its token."""
        word2int = dict(self.word2int)
        for token in tokens:
            word2int.setdefault(token, len(word2int))
        return Tokenizer(word2int, self.mode)

    def extends(self, base: Tokenizer) -> bool:
        """Whether this vocabulary is ``base`` with tokens appended (each of base's ids means the same)."""
        return self.mode == base.mode and all(self.word2int.get(t) == i for t, i in base.word2int.items())

    @classmethod
    def from_vocabulary(cls, word2int: dict[str, int], mode: str | None = None) -> Tokenizer:
        """A tokenizer over a saved vocabulary; the mode is inferred (any multi-character token means words)."""
        if mode is None:
            mode = "word" if any(len(t) > 1 for t in word2int if t not in SPECIALS) else "char"
        return cls(word2int, mode)

    @classmethod
    def load(cls, folder: str | Path, mode: str | None = None) -> Tokenizer:
        """Read ``word2int.json`` from a folder."""
        return cls.from_vocabulary(json.loads((Path(folder) / VOCABULARY_FILE).read_text("utf-8")), mode)

    # -- encoding ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.word2int)

    def tokenize(self, text: str) -> list[str]:
        return split_chars(text) if self.mode == "char" else split_words(text)

    def ids(self, text: str) -> list[int]:
        return [self.word2int.get(token, UNK) for token in self.tokenize(text)]

    def encode_caption(self, text: str, max_tokens: int = CAPTION_MAX_TOKENS) -> list[int]:
        """``<sos>`` + the first ``max_tokens`` tokens + ``<eos>``."""
        return [SOS, *self.ids(text)[:max_tokens], EOS]

    def encode_info(self, text: str, max_tokens: int = INFO_MAX_TOKENS) -> list[int]:
        return self.ids(text)[:max_tokens]

    def decode(self, ids: Sequence[int]) -> str:
        """Tokens up to the first ``<eos>``; ``<sos>``, ``<pad>`` and ``<mask>`` are skipped."""
        tokens = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id == EOS:
                break
            if token_id in (SOS, PAD, MASK):
                continue
            tokens.append(self.int2word.get(token_id, SPECIALS[UNK]))
        return ("" if self.mode == "char" else " ").join(tokens)

    def caption_length(self, text: str) -> int:
        """Length in tokens: characters for Chinese, words for English."""
        return len(self.tokenize(text))
