"""The candidate's training data: every new image plus a replayed sample of the old ones, so that
fine-tuning on a fresh crawl does not forget what the champion knew.

The view is a release-format index (split files, records, vocabulary) in its own folder; its images
stay the dataset's (``data.images_root``). Val and test are the dataset's, unchanged.
"""

from __future__ import annotations

import numpy as np

from components import storage
from components.data.release.versions import DatasetState, read_state, version_folder


def replay_ids(old: list[str], new: list[str], ratio: float, seed: int) -> list[str]:
    """The training ids of a view: ``round(ratio x len(new))`` old ids (at most all), drawn with
    ``seed`` and kept in dataset order, then every new id."""
    count = min(len(old), round(ratio * len(new)))
    chosen = set(np.random.default_rng(seed).choice(len(old), size=count, replace=False).tolist())
    return [image_id for n, image_id in enumerate(old) if n in chosen] + list(new)


def write_view(dataset: str, previous_version: str, folder: str, ratio: float, seed: int) -> dict[str, int]:
    """The view of the dataset's current version against ``previous_version`` written to ``folder``;
    how many images are new and replayed."""
    state = read_state(dataset)
    before = set(read_state(version_folder(dataset, previous_version)).splits.get("train", []))
    train = state.splits.get("train", [])
    old, new = [i for i in train if i in before], [i for i in train if i not in before]
    splits = {**state.splits, "train": replay_ids(old, new, ratio, seed)}
    captions = {i: state.captions[i] for ids in splits.values() for i in ids if i in state.captions}
    for name, data in DatasetState(captions, splits, dict(state.extras)).files().items():  # ref_captions.json last
        storage.write_bytes(storage.join(folder, name), data)
    return {"new_images": len(new), "replayed_images": len(splits["train"]) - len(new)}
