"""The sidecar of the synthetic crawl: what every caption is made of, and which input owns each part.

``truth.jsonl`` sits beside the release files, one line per image after a header line:

    {"format": "caponimage-synthetic-truth", "version": 2, "lang": "zh", "seed": 0, "dataset_version": "..."}
    {"image_id": "s0-0000001", "item": {...}, "boxes": [{"slot": "column", "length": 1, "rank": 2,
     "row": 3, "rows": 5, "text": "深层保湿", "shown": "深层保湿", "noise": null,
     "parts": [["深层", "image", "mod", 0], ["保湿", "info", "head", 2]]}, ...]}

``boxes`` is parallel to the record's ``ocr_locs`` (neighbour-chain order). ``text`` is the clean
caption, ``shown`` what the record (or the crawled image) holds, ``noise`` the kind of OCR-like noise
that turned one into the other. ``row``/``rows`` place a column row among its column's rows, decoys
included. Records of an image id never change, so one sidecar serves every version of a dataset
(ingested images have none). Training never reads it; the oracle and evaluation do.

In a dataset the file is the exchange form, as the release files are: it is imported into a Delta
table of its own, ``DATASET/truth/`` (each line as written, keyed by image id, the header line in the
commit), never columns of the rows training reads; ``export_truth`` writes the file back line for
line. A crawl partition keeps only the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

from components import storage
from components.data.release.table import read_sidecar, write_sidecar
from components.data.synthetic.grammar import IMAGE, INFO, BoxPlan, Item, Part
from components.data.synthetic.lexicon import Lexicon

TRUTH_FILE = "truth.jsonl"
TRUTH_TABLE = "truth"  # DATASET/truth/: the sidecar as its own Delta table (image_id, line)
TRUTH_FORMAT = "caponimage-synthetic-truth"
TRUTH_VERSION = 2


@dataclass(frozen=True)
class BoxTruth:
    plan: BoxPlan
    parts: tuple[Part, ...]
    text: str  # the clean caption
    shown: str  # what the record holds (differs from text where noise was applied)
    noise: str | None = None
    row: int = -1
    rows: int = 0

    @property
    def slot(self) -> str:
        return self.plan.slot

    def to_json(self) -> dict:
        return {
            **asdict(self.plan),
            "row": self.row,
            "rows": self.rows,
            "text": self.text,
            "shown": self.shown,
            "noise": self.noise,
            "parts": [[p.text, p.channel, p.role, p.attribute] for p in self.parts],
        }

    @classmethod
    def from_json(cls, value: Mapping) -> BoxTruth:
        plan = BoxPlan(**{f.name: value[f.name] for f in fields(BoxPlan)})
        parts = tuple(Part(*p) for p in value["parts"])
        return cls(plan, parts, value["text"], value["shown"], value["noise"], value["row"], value["rows"])


@dataclass(frozen=True)
class ImageTruth:
    image_id: str
    item: Item
    boxes: tuple[BoxTruth, ...]
    has_column: bool  # a column glyph is drawn

    def to_json(self) -> dict:
        item = {**asdict(self.item), "fillers": list(self.item.fillers)}
        return {"image_id": self.image_id, "item": item, "has_column": self.has_column,
                "boxes": [b.to_json() for b in self.boxes]}  # fmt: skip

    @classmethod
    def from_json(cls, value: Mapping) -> ImageTruth:
        fields = dict(value["item"])
        for key in ("fillers", "attributes", "markers"):
            fields[key] = tuple(fields[key])
        boxes = tuple(BoxTruth.from_json(b) for b in value["boxes"])
        return cls(value["image_id"], Item(**fields), boxes, bool(value["has_column"]))


@dataclass(frozen=True)
class Truth:
    """A dataset's sidecar: its header and every image's truth by id."""

    header: dict
    images: dict[str, ImageTruth]

    @property
    def lang(self) -> str:
        return self.header["lang"]


def truth_bytes(header: Mapping, truths: Iterable[ImageTruth]) -> bytes:
    lines = [json.dumps({"format": TRUTH_FORMAT, "version": TRUTH_VERSION, **header}, ensure_ascii=False)]
    lines += [json.dumps(t.to_json(), ensure_ascii=False) for t in truths]
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_truth(folder: str, header: Mapping, truths: Iterable[ImageTruth]) -> str:
    """``truth.jsonl`` in ``folder`` (a release folder, or a crawl partition)."""
    location = storage.join(str(folder), TRUTH_FILE)
    storage.write_bytes(location, truth_bytes(header, truths))
    return location


def _checked_header(line: str, where: str) -> dict:
    header = json.loads(line) if line.strip() else {}
    if header.get("format") != TRUTH_FORMAT or header.get("version") != TRUTH_VERSION:
        raise ValueError(f"{where}: not a version-{TRUTH_VERSION} synthetic truth file (header {line[:120]!r})")
    return header


def _file_lines(location: str) -> tuple[str, list[str]]:
    """(the header line, the image lines) of a truth file, its header checked."""
    lines = storage.read_bytes(location).decode("utf-8").splitlines()
    _checked_header(lines[0] if lines else "", location)
    return lines[0], [line for line in lines[1:] if line.strip()]


def import_truth(dataset: str, source: str | None = None) -> bool:
    """The source's ``truth.jsonl`` (default: the dataset's) as the dataset's truth table
    (``DATASET/truth/``, each line as written, keyed by image id; a new version replacing one there);
    False when the source has none."""
    location = storage.join(source or dataset, TRUTH_FILE)
    if not storage.exists(location):
        return False
    header, lines = _file_lines(location)
    write_sidecar(dataset, TRUTH_TABLE, header, ((json.loads(line)["image_id"], line) for line in lines))
    return True


def export_truth(dataset: str, out: str) -> bool:
    """The dataset's truth table as ``truth.jsonl`` in ``out``, line for line as imported; False without one."""
    found = read_sidecar(dataset, TRUTH_TABLE)
    if found is None:
        return False
    header, rows = found
    text = "".join(f"{line}\n" for line in [header, *(row["line"] for row in rows)])
    storage.write_bytes(storage.join(out, TRUTH_FILE), text.encode("utf-8"))
    return True


def ensure_truth(dataset: str) -> str | None:
    """Where the dataset's sidecar is (``find_truth``), its file imported first when it has no truth
    table yet (as its release files are on a first read)."""
    found = find_truth(dataset)
    if found is not None and found.endswith(TRUTH_FILE):
        import_truth(dataset)
        found = find_truth(dataset)
    return found


def find_truth(location: str) -> str | None:
    """Where a dataset's sidecar is (its truth table, else the file not imported yet, or a crawl
    partition's file); None without one. One sidecar serves every version of the dataset's table."""
    location = str(location).rstrip("/")
    for found in (storage.join(location, TRUTH_TABLE, "_delta_log"), storage.join(location, TRUTH_FILE)):
        if storage.exists(found):
            return found.removesuffix("/_delta_log")
    return None


def read_truth(location: str) -> Truth | None:
    """The sidecar of a dataset (its truth table) or of a crawl partition (its file), or None for a
    dataset without one (CapOnImage2M)."""
    found = find_truth(location)
    if found is None:
        return None
    if found.endswith(TRUTH_FILE):
        header_line, lines = _file_lines(found)
    else:
        header_line, rows = read_sidecar(str(location).rstrip("/"), TRUTH_TABLE)
        lines = [row["line"] for row in rows]
    header = _checked_header(header_line, found)
    truths = (ImageTruth.from_json(json.loads(line)) for line in lines)
    return Truth(header, {truth.image_id: truth for truth in truths})


# -- what a caption claims, by construction (the matching negatives' levels) ------------------------------
def fits_product(box: BoxTruth, item: Item, lexicon: Lexicon, has_column: bool = True) -> bool:
    """Whether every INFO and IMAGE part of ``box``'s caption agrees with ``item``: its words are in the
    item's info, its drawn things are what the item's image shows. A caption of LOC and NOISE parts
    alone fits any product."""
    info = item.info(lexicon)
    shown = {lexicon.colours[item.colour][0], lexicon.finishes[item.finish]}
    shown |= {lexicon.markers[m].phrase for m in item.markers}
    if has_column:
        shown.add(lexicon.modifier(item.glyph))
    category = lexicon.category(item.category)
    expected = {"stem": lexicon.stems[category.group], "tail": category.tail}  # not words of the info
    for part in box.parts:
        if part.channel == INFO:
            fits = part.text == expected[part.role] if part.role in expected else part.text in info
        else:
            fits = part.channel != IMAGE or part.text in shown
        if not fits:
            return False
    return True


def same_slot(a: BoxTruth, b: BoxTruth) -> bool:
    """Whether two captions are for the same kind of place: slot and length class."""
    return a.plan.slot == b.plan.slot and a.plan.length == b.plan.length


def same_place(a: BoxTruth, b: BoxTruth) -> bool:
    """Whether two captions of one kind of place are for the same one: the same row of a column (its
    rank), the same marker."""
    return a.plan.rank == b.plan.rank and a.plan.marker == b.plan.marker
