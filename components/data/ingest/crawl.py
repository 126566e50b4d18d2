"""Fresh crawls as they land: date partitions of product lines and original-size images.

    CRAWL_ROOT/crawl_date=2026-11-22/products.jsonl   one product a line: product_id, title,
                                                      attributes, image (relative to the partition), url?
    CRAWL_ROOT/crawl_date=2026-11-22/images/...       the images, at their crawled size
    CRAWL_ROOT/crawl_date=2026-11-22/_SUCCESS         written last: the partition is complete

A partition's key (a hash of its products file, its image listing and the ingest settings) tells
whether it changed since it was ingested.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from components import storage
from components.data.record.rejection import RecordRejected
from components.data.record.untrusted import checked_id, json_lines, json_object

PRODUCTS_FILE = "products.jsonl"  # a partition's products, one JSON object a line
SUCCESS_FILE = "_SUCCESS"  # written last: the partition is complete
PARTITION_NAME = re.compile(r"crawl_date=(\d{4}-\d{2}-\d{2})")  # the whole name (fullmatch)
REQUIRED = ("product_id", "title", "attributes", "image")
INFO_SEPARATOR = "|"  # between the title and each attribute: a token of its own (the paper's separator token)


@dataclass(frozen=True)
class Partition:
    name: str  # crawl_date=YYYY-MM-DD
    location: str
    complete: bool  # _SUCCESS is there


def find_partitions(root: str) -> list[Partition]:
    """Every ``crawl_date=`` partition under ``root``, oldest first."""
    found = []
    for entry in storage.list_folder(root):
        if entry.is_folder and PARTITION_NAME.fullmatch(entry.name):
            location = storage.join(root, entry.name)
            found.append(Partition(entry.name, location, storage.exists(storage.join(location, SUCCESS_FILE))))
    return found


def partition_key(partition: Partition, settings: str) -> str:
    """A hash of what the partition holds (its products file, its files' names and sizes) and of the
    settings it is ingested with: equal keys, equal results."""
    digest = hashlib.sha256()
    digest.update(storage.read_bytes(storage.join(partition.location, PRODUCTS_FILE)))
    for entry in storage.list_folder(partition.location, recursive=True):
        if not entry.is_folder and entry.name not in (PRODUCTS_FILE, SUCCESS_FILE):
            digest.update(f"{entry.name}\t{entry.size}\n".encode())
    digest.update(settings.encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Product:
    partition: str
    line: int  # 1-based line number in products.jsonl
    product_id: str
    title: str
    attributes: Any
    image: str  # relative to the partition
    url: str | None = None


def read_products(partition: Partition) -> list[tuple[int, str]]:
    """(line number, text) of every non-empty line of the partition's products file (``json_lines``)."""
    return json_lines(storage.read_bytes(storage.join(partition.location, PRODUCTS_FILE)))


def parse_product(partition: str, line: int, text: str) -> Product:
    """One line of ``products.jsonl``, or ``RecordRejected`` naming the field and the reason."""
    value = json_object(text, REQUIRED)
    for key in ("product_id", "title", "image"):
        if not isinstance(value[key], str):
            raise RecordRejected(key, "bad_type", f"expected a string, got {type(value[key]).__name__}")
    checked_id(value["product_id"], "product_id")  # it names the image file too
    if not isinstance(value["attributes"], dict | list):
        raise RecordRejected("attributes", "bad_type", f"expected an object or a list, got {value['attributes']!r}")
    url = value.get("url")
    if url is not None and not isinstance(url, str):
        raise RecordRejected("url", "bad_type", f"expected a string, got {type(url).__name__}")
    return Product(partition, line, value["product_id"], value["title"], value["attributes"], value["image"], url)


def _values(attributes: Any) -> list[str]:
    """Attribute values in order, nested lists flattened (``{"features": [...]}`` gives each feature)."""
    items = attributes.values() if isinstance(attributes, dict) else attributes
    out: list[str] = []
    for item in items:
        if isinstance(item, list | tuple):
            out += _values(list(item))
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            out.append(str(item))
    return out


def product_info(title: str, attributes: Any, limit: int = 60) -> str:
    """The product info: the title, then the attribute values it does not already contain, each after
    ``INFO_SEPARATOR``, at most ``limit`` characters."""
    parts = [" ".join(title.split())]
    for value in _values(attributes):
        value = " ".join(value.split())
        if value and value not in parts[0]:
            parts.append(value)
    return INFO_SEPARATOR.join(parts)[:limit].rstrip()
