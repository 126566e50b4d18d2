"""Shared fixtures: a tiny synthetic dataset built once per session (no Ray)."""

from __future__ import annotations

import pytest

from components.data.synthetic.build import SyntheticSpec, build_release


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A 30-image Chinese dataset in the release format; treat it as read-only."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    by_split, tokenizer = build_release(SyntheticSpec(images=30, seed=7), root, workers=1)
    return root, by_split, tokenizer
