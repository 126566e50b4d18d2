"""One version of a dataset as a flow reads it: the object handed down from the flow to every floor
below it (``components.data.prepare.prepare_dataset`` makes it).

It carries the location, the images, its table at one version (opened once per process), its version
(so the version a run logs is the version it read), the tokenizer (whole: it pickles into Ray's
workers) and the synthetic sidecar where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from components.data.record.tokenizer import Tokenizer
from components.data.release.table import DatasetTable


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset as one flow reads it (frozen: every floor sees the same version)."""

    location: str  # the dataset folder
    images_root: str  # where its images are
    table: DatasetTable  # its table at the version read, opened once
    tokenizer: Tokenizer  # the vocabulary the model reads and writes (a checkpoint's, when one is given)
    truth: str | None = None  # the synthetic crawl's sidecar (its truth table), where there is one

    @property
    def version(self) -> str:
        """What scores are comparable on and what runs record having read: the table's version."""
        return self.table.version

    def with_tokenizer(self, tokenizer: Tokenizer) -> PreparedDataset:
        """The same data read with another vocabulary (a trained model's)."""
        return replace(self, tokenizer=tokenizer)
