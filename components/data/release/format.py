"""The CapOnImage2M release format (SPEC 2.1): read it exactly, write it too.

A dataset folder holds ``ref_captions.json`` (records keyed by image id), the split files
``trn_names.npy`` / ``val_names.npy`` / ``tst_names.npy`` (unicode arrays, loaded without pickle),
``images/<id>.png`` and optionally the vocabulary ``word2int.json`` / ``int2word.json``.

Reading never dies on one bad record: it returns the good records plus a ``Rejection`` (image id,
field, reason) for each bad one. ``strict=True`` raises ``DatasetError`` on the first instead.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from components import storage
from components.data.record.boxes import Box, RawBox, format_box, is_pixel_box_set, normalise_box, parse_box
from components.data.record.images import image_size
from components.data.record.rejection import RecordRejected, Rejection
from components.data.record.untrusted import checked_id
from components.errors import BoxError, DatasetFormatError

CAPTIONS_FILE = "ref_captions.json"
IMAGES_DIR = "images"
SPLIT_FILES = {"train": "trn_names.npy", "val": "val_names.npy", "test": "tst_names.npy"}
REQUIRED_KEYS = ("info", "all_locs", "ocr_locs", "ocr_txts")


def _freeze(value: Any) -> Any:
    """JSON lists to tuples, so that records are immutable and compare by value."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


@dataclass(frozen=True)
class ImageRecord:
    """One image of the dataset with its boxes normalised to fractions."""

    image_id: str
    info: str
    all_boxes: tuple[Box, ...]
    caption_boxes: tuple[Box, ...]
    captions: tuple[str, ...]
    colors: tuple | None = None
    url: str | None = None

    @property
    def mask_boxes(self) -> tuple[Box, ...]:
        """Boxes to black out: ``all_locs`` plus any caption box a file forgot to list there."""
        extra = tuple(b for b in self.caption_boxes if b not in self.all_boxes)
        return self.all_boxes + extra

    def to_json(self) -> dict[str, Any]:
        """The record's value in ``ref_captions.json``."""
        value: dict[str, Any] = {
            "info": self.info,
            "all_locs": [format_box(b) for b in self.all_boxes],
            "ocr_locs": [format_box(b) for b in self.caption_boxes],
            "ocr_txts": list(self.captions),
        }
        if self.colors is not None:
            value["ocr_colors"] = _thaw(self.colors)
        if self.url is not None:
            value["url"] = self.url
        return value


@dataclass
class ReadResult:
    records: list[ImageRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def rejection_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rejection in self.rejections:
            counts[rejection.reason] = counts.get(rejection.reason, 0) + 1
        return dict(sorted(counts.items()))


# -- split files -----------------------------------------------------------------------------------
def names_bytes(names: Sequence[str]) -> bytes:
    """A split file's bytes: a numpy unicode array of image ids (loadable without pickle)."""
    array = np.array([str(n) for n in names], dtype=np.str_) if names else np.array([], dtype="<U1")
    with io.BytesIO() as handle:
        np.save(handle, array, allow_pickle=False)
        return handle.getvalue()


def write_names(path: str | Path, names: Sequence[str]) -> None:
    Path(path).write_bytes(names_bytes(names))


def read_names(path: str | Path) -> list[str]:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DatasetFormatError(
            f"{path}: not a plain numpy array of ids ({err}); re-save it with "
            "np.save(path, np.array(ids, dtype=str)) so it loads without pickle"
        ) from err
    except OSError as err:
        raise DatasetFormatError(f"{path}: cannot be read ({err})") from err
    if array.ndim != 1 or array.dtype.kind not in "UiS":
        raise DatasetFormatError(f"{path}: expected a 1-d array of ids, got dtype {array.dtype} shape {array.shape}")
    return [a.decode() if isinstance(a, bytes) else str(a) for a in array.tolist()]


# -- paths -----------------------------------------------------------------------------------------
def image_path(images_root: Path, image_id: str) -> Path:
    """``images_root/<id>.png`` on local disk, refusing an id that escapes the folder."""
    return Path(storage.safe_join(str(images_root), f"{image_id}.png"))


# -- parsing one record ----------------------------------------------------------------------------
def _check_structure(value: Any) -> None:
    if not isinstance(value, dict):
        raise RecordRejected("<record>", "bad_type", f"expected an object, got {type(value).__name__}")
    for key in REQUIRED_KEYS:
        if key not in value:
            raise RecordRejected(key, "missing_key", f"the record has no '{key}'")
    if not isinstance(value["info"], str):
        raise RecordRejected("info", "bad_type", f"expected a string, got {type(value['info']).__name__}")
    for key in ("all_locs", "ocr_locs", "ocr_txts"):
        if not isinstance(value[key], list):
            raise RecordRejected(key, "bad_type", f"expected a list, got {type(value[key]).__name__}")
    n_boxes = len(value["ocr_locs"])
    for key in ("ocr_txts", "ocr_colors"):
        if key in value and value[key] is not None:
            if not isinstance(value[key], list):
                raise RecordRejected(key, "bad_type", f"expected a list, got {type(value[key]).__name__}")
            if len(value[key]) != n_boxes:
                raise RecordRejected(key, "length_mismatch", f"{len(value[key])} entries for {n_boxes} ocr_locs")
    if n_boxes == 0:
        raise RecordRejected("ocr_locs", "no_captions", "the record has no caption boxes")
    for i, text in enumerate(value["ocr_txts"]):
        if not isinstance(text, str) or not text.strip():
            raise RecordRejected(f"ocr_txts[{i}]", "bad_caption", f"expected a non-empty string, got {text!r}")
        if storage.unnameable(text):
            raise RecordRejected(f"ocr_txts[{i}]", "bad_caption", f"{text!r} holds a NUL byte or is not valid UTF-8")
    if storage.unnameable(value["info"]):
        raise RecordRejected("info", "bad_type", "holds a NUL byte or is not valid UTF-8")
    if "url" in value and value["url"] is not None and not isinstance(value["url"], str):
        raise RecordRejected("url", "bad_type", f"expected a string, got {type(value['url']).__name__}")


def _parse_raw_boxes(value: dict[str, Any]) -> dict[str, list[RawBox]]:
    raw: dict[str, list[RawBox]] = {}
    for key in ("all_locs", "ocr_locs"):
        raw[key] = []
        for i, text in enumerate(value[key]):
            try:
                raw[key].append(parse_box(text))
            except BoxError as err:
                raise RecordRejected(f"{key}[{i}]", "bad_box", str(err)) from err
    return raw


def _normalise(raw: dict[str, list[RawBox]], size: tuple[int, int] | None) -> dict[str, list[Box]]:
    # One pixel test over all of the record's boxes (see normalise_boxes), then each box by name.
    pixel_size = None
    if is_pixel_box_set(raw["all_locs"] + raw["ocr_locs"]):
        if size is None:
            raise RecordRejected(
                "ocr_locs", "bad_box", "boxes are in pixels but the image size is unknown (images not read)"
            )
        pixel_size = size
    boxes: dict[str, list[Box]] = {}
    for key in ("all_locs", "ocr_locs"):
        boxes[key] = []
        for i, one in enumerate(raw[key]):
            try:
                boxes[key].append(normalise_box(one, pixel_size))
            except BoxError as err:
                raise RecordRejected(f"{key}[{i}]", "bad_box", str(err)) from err
    return boxes


def parse_record_value(image_id: str, value: Any, image_size: tuple[int, int] | None) -> ImageRecord:
    """One ``ref_captions.json`` entry to an ``ImageRecord``, or ``RecordRejected`` naming the field.

    ``image_size`` (width, height) is needed only when the record's boxes are in pixels.
    """
    checked_id(image_id)
    _check_structure(value)
    boxes = _normalise(_parse_raw_boxes(value), image_size)
    colors = value.get("ocr_colors")
    return ImageRecord(
        image_id=image_id,
        info=value["info"],
        all_boxes=tuple(boxes["all_locs"]),
        caption_boxes=tuple(boxes["ocr_locs"]),
        captions=tuple(value["ocr_txts"]),
        colors=_freeze(colors) if colors is not None else None,
        url=value.get("url"),
    )


def parse_record(image_id: str, value: Any, images_root: str | Path | None) -> ImageRecord:
    """Like ``parse_record_value``, first checking the image under ``images_root`` (exists, opens).

    Without ``images_root`` (no images to check) pixel boxes cannot be normalised and are rejected.
    """
    checked_id(image_id)
    _check_structure(value)
    size = image_size(str(images_root), f"{image_id}.png") if images_root is not None else None
    return parse_record_value(image_id, value, size)


# -- reading a folder ------------------------------------------------------------------------------
def load_captions_file(root: Path) -> dict[str, Any]:
    path = root / CAPTIONS_FILE
    if not path.is_file():
        raise DatasetFormatError(f"{root} is not a dataset folder: {CAPTIONS_FILE} is missing")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetFormatError(f"{path}: not valid UTF-8 JSON ({err})") from err
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{path}: expected an object keyed by image id, got {type(data).__name__}")
    return data


def first_listings(ids: list[str]) -> tuple[list[str], list[str]]:
    """(each id once, in order of its first listing; the ids listed again): a split file that names
    an image twice trains and counts it once."""
    seen: set[str] = set()
    unique, repeated = [], []
    for image_id in ids:
        (repeated if image_id in seen else unique).append(image_id)
        seen.add(image_id)
    return unique, repeated


def split_ids(root: str | Path, split: str) -> list[str]:
    if split not in SPLIT_FILES:
        raise DatasetFormatError(f"unknown split '{split}'; expected one of {', '.join(SPLIT_FILES)}")
    path = Path(root) / SPLIT_FILES[split]
    if not path.is_file():
        raise DatasetFormatError(f"{Path(root)} has no {SPLIT_FILES[split]} for the '{split}' split")
    return read_names(path)


def available_splits(root: str | Path) -> list[str]:
    return [split for split, name in SPLIT_FILES.items() if (Path(root) / name).is_file()]


def _check_one(args: tuple[str, Any, Path | None]) -> ImageRecord | Rejection:
    image_id, value, images_root = args
    if value is None:
        return Rejection(image_id, CAPTIONS_FILE, "missing_record", "listed in a split file but has no record")
    try:
        return parse_record(image_id, value, images_root)
    except RecordRejected as rejected:
        return rejected.rejection(image_id)


def iter_checked(
    data: dict[str, Any], ids: Iterable[str], images_root: Path | None, workers: int = 8
) -> Iterator[ImageRecord | Rejection]:
    """Each id's record or rejection, in the order of ``ids``; image checks run on a thread pool."""
    jobs = ((image_id, data.get(image_id), images_root) for image_id in ids)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        yield from pool.map(_check_one, jobs, chunksize=1)


def check_records(
    data: dict[str, Any], ids: Iterable[str], images_root: Path | None, *, strict: bool = False, workers: int = 8
) -> ReadResult:
    """Records of ``ids`` from loaded ``ref_captions.json`` data: the good ones plus a rejection each."""
    result = ReadResult()
    ids, repeated = first_listings(list(ids))
    for image_id in repeated:
        rejection = Rejection(
            image_id, "split file", "duplicate_id", "listed again in the split file; the first is kept"
        )
        if strict:
            raise rejection.error()
        result.rejections.append(rejection)
    for item in iter_checked(data, ids, images_root, workers=workers):
        if isinstance(item, Rejection):
            if strict:
                raise item.error()
            result.rejections.append(item)
        else:
            result.records.append(item)
    return result


def read_release(
    root: str | Path,
    split: str | None = None,
    *,
    images_root: str | Path | None = None,
    check_images: bool = True,
    strict: bool = False,
    workers: int = 8,
) -> ReadResult:
    """Read a release-format folder: the good records plus a rejection for each bad one.

    ``split`` (``train`` / ``val`` / ``test``) reads the ids of that split file; ``None`` reads every
    record. ``images_root`` defaults to ``root/images``. ``check_images=False`` skips opening images
    (fast, but pixel-coordinate records are then rejected since their size is unknown). With
    ``strict`` the first rejection raises ``DatasetError`` naming the image id and field.
    """
    root = Path(root)
    data = load_captions_file(root)
    ids = split_ids(root, split) if split else list(data)
    return check_records(
        data, ids, resolve_images_root(root, images_root) if check_images else None, strict=strict, workers=workers
    )


def resolve_images_root(root: str | Path, images_root: str | Path | None = None) -> Path:
    return Path(images_root) if images_root else Path(root) / IMAGES_DIR


@dataclass
class ReleaseCheck:
    """Every split of a folder checked: the records and rejections per split, and records in no split."""

    by_split: dict[str, ReadResult]
    unsplit: int


def check_release(
    root: str | Path, images_root: str | Path | None = None, *, strict: bool = False, workers: int = 8
) -> ReleaseCheck:
    """Check every split that has a names file (every record as split ``all`` when none has)."""
    root = Path(root)
    data = load_captions_file(root)
    images = resolve_images_root(root, images_root)
    splits = available_splits(root)
    groups = {split: split_ids(root, split) for split in splits} or {"all": list(data)}
    in_splits = {i for ids in groups.values() for i in ids}
    unsplit = sum(1 for i in data if i not in in_splits) if splits else 0
    return ReleaseCheck(
        {name: check_records(data, ids, images, strict=strict, workers=workers) for name, ids in groups.items()},
        unsplit,
    )


# -- writing ---------------------------------------------------------------------------------------
def write_captions_file(root: str | Path, records: Iterable[ImageRecord]) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data = {record.image_id: record.to_json() for record in records}
    (root / CAPTIONS_FILE).write_text(json.dumps(data, ensure_ascii=False), "utf-8")


def write_release(root: str | Path, records: Sequence[ImageRecord], splits: dict[str, Sequence[str]]) -> None:
    """``ref_captions.json`` plus one names file per split (images are saved with ``save_image``)."""
    root = Path(root)
    known = {r.image_id for r in records}
    for split, names in splits.items():
        if split not in SPLIT_FILES:
            raise ValueError(f"unknown split '{split}'; expected one of {', '.join(SPLIT_FILES)}")
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"split '{split}' names {len(missing)} ids with no record, e.g. '{missing[0]}'")
    write_captions_file(root, records)
    for split, names in splits.items():
        write_names(root / SPLIT_FILES[split], names)


def save_image(root: str | Path, image_id: str, image: Image.Image) -> Path:
    folder = Path(root) / IMAGES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = image_path(folder, image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
