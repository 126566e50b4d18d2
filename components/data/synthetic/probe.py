"""The image probe: a copy of a synthetic dataset whose captions only the image can tell.

Every image keeps its pixels and its masks; its caption boxes are cut down to the colour call-outs
and the marker call-outs, and each caption to its IMAGE parts (``finish + colour``, the marker's
phrase). A model that reads no info and no neighbours can still write these exactly if, and only if,
its image pathway sees the product's colour and finish and the glyph beside the box: the probe
(``bench/image_probe.py`` and a small version in the suite) proves that pathway or shows it broken.

The probe folder is a release of its own (``ref_captions.json``, the split files, the source's
vocabulary, its table) whose ``images`` link to the source's images.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from components.data.record.tokenizer import Tokenizer
from components.data.release.format import (
    IMAGES_DIR,
    SPLIT_FILES,
    ImageRecord,
    parse_record_value,
    write_captions_file,
    write_names,
)
from components.data.release.table import ensure_table, import_release, iter_rows
from components.data.synthetic.grammar import IMAGE
from components.data.synthetic.lexicon import LEXICONS, Lexicon
from components.data.synthetic.truth import ImageTruth, read_truth

PROBE_SLOTS = ("colour", "marker")  # the call-outs whose IMAGE parts say what the image shows


def probe_record(record: ImageRecord, truth: ImageTruth, lexicon: Lexicon) -> ImageRecord | None:
    """``record`` with only its colour and marker boxes, each captioned with its IMAGE parts (None
    when it has no such box). Every box stays masked: the pixels are the source's."""
    kept = [b for b, box in enumerate(truth.boxes) if box.slot in PROBE_SLOTS]
    if not kept:
        return None
    captions = [lexicon.joiner.join(p.text for p in truth.boxes[b].parts if p.channel == IMAGE) for b in kept]
    colors = None if record.colors is None else tuple(record.colors[b] for b in kept)  # parallel to the boxes
    boxes = tuple(record.caption_boxes[b] for b in kept)
    return replace(record, caption_boxes=boxes, captions=tuple(captions), colors=colors)


def write_image_probe(dataset: str, out: str | Path) -> dict[str, int]:
    """The probe of the synthetic ``dataset`` (a local folder with a truth sidecar) written to ``out``;
    how many images each split keeps."""
    truth = read_truth(dataset)
    if truth is None:
        raise ValueError(f"{dataset} has no truth sidecar: the image probe needs a synthetic dataset")
    lexicon, out = LEXICONS[truth.lang], Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, records, splits = ensure_table(dataset), [], {}
    for split in SPLIT_FILES:
        splits[split] = []
        for row in iter_rows(table, split):
            record = parse_record_value(row["image_id"], json.loads(row["record"]), None)
            probed = probe_record(record, truth.images[record.image_id], lexicon)
            if probed is not None:
                records.append(probed)
                splits[split].append(probed.image_id)
    Tokenizer.load(dataset).save(out)
    images = out / IMAGES_DIR
    if not images.exists():
        os.symlink(Path(dataset, IMAGES_DIR).resolve(), images, target_is_directory=True)
    for split, ids in splits.items():
        write_names(out / SPLIT_FILES[split], ids)
    write_captions_file(out, records)
    import_release(str(out), replace=True)
    return {split: len(ids) for split, ids in splits.items()}
