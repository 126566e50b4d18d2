"""Malformed input thrown at the readers of what comes from outside, by a seeded generator: crawl
product lines (the ingest's reader) and captioning request lines (the batch captioner's reader). For
every mix: no exception escapes the reader, every bad line is counted under the reason it was made
to have, and every good line is kept, in order. (Pyfunc rows: tests/model/test_serving.py.)"""

import json
import random
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from components.data.ingest.crawl import Partition
from components.data.ingest.partitions import IngestResult, Plan, read_products
from components.data.record.untrusted import MAX_ID_CHARS, MAX_JSON_CHARS, MAX_JSON_DEPTH
from components.serving.batch import RequestReader

UNSAFE_IDS = ["", "p\x00", "p-1\n", "p\ud800", "../p", "/p", "a//b", " p", "p\\q", "p\u2028", "x" * (MAX_ID_CHARS + 1)]


def nested(rng: random.Random) -> str:
    depth = rng.choice([MAX_JSON_DEPTH + 1, 1000, 100_000])
    return rng.choice(["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth, "[" * depth])


def product(number: int, **changes) -> dict:
    value = {"product_id": f"p-{number}", "title": f"保温杯 {number}", "attributes": {"容量": "500ml"}}
    value.update(image=f"img/{number}.jpg", **changes)
    return value


def crawl_line(rng: random.Random, number: int, seen: list[str]) -> tuple[bytes, str | None]:
    """A products.jsonl line and the reason it must be rejected for (None: kept)."""
    bad = ["truncated", "deep", "huge", "unsafe_id", "type", "shape", "missing", "repeat"]
    kind = rng.choice(["good"] * 4 + ["raw_text", *bad])
    good = json.dumps(product(number), ensure_ascii=False)
    if kind == "good":
        return good.encode(), None
    if kind == "raw_text":  # JSON allows U+2028 raw in a string; bytes that are not UTF-8 become U+FFFD
        return json.dumps(product(number, title="a\u2028b"), ensure_ascii=False).encode(), None
    if kind == "truncated":
        return good[: rng.randrange(1, len(good) - 1)].encode(), "bad_json"
    if kind == "deep":
        return nested(rng).encode(), "too_deep"
    if kind == "huge":
        return json.dumps(product(number, title="x" * MAX_JSON_CHARS)).encode(), "too_large"
    if kind == "unsafe_id":
        return json.dumps(product(number, product_id=rng.choice(UNSAFE_IDS))).encode(), "unsafe_id"
    if kind == "type":
        field, value = rng.choice([("product_id", 5), ("product_id", None), ("title", ["t"]), ("attributes", "x")])
        return json.dumps(product(number, **{field: value})).encode(), "bad_type"
    if kind == "shape":
        return rng.choice([b"[1, 2]", b"3", b"null", b'"text"']), "bad_type"
    if kind == "missing":
        value = product(number)
        del value[rng.choice(["product_id", "title", "attributes", "image"])]
        return json.dumps(value).encode(), "missing_key"
    if not seen:  # repeat: a product id the crawl had already
        return good.encode(), None
    return json.dumps(product(number, product_id=rng.choice(seen))).encode(), "duplicate_product"


@pytest.mark.parametrize("seed", range(6))
def test_the_crawl_reader_counts_every_bad_line_and_keeps_every_good_one(seed, tmp_path):
    rng = random.Random(seed)
    lines, expected, kept = [], Counter(), []
    for number in range(40):
        line, reason = crawl_line(rng, number, kept)
        lines.append(line)
        if reason is None:
            kept.append(json.loads(line)["product_id"])
        else:
            expected[reason] += 1
    not_utf8 = b'{"product_id": "p-x", "title": "\xff\xfe", "attributes": [], "image": "i"}'  # read as U+FFFD: kept
    lines.insert(rng.randrange(len(lines)), not_utf8)
    kept.append("p-x")
    partition = tmp_path / "crawl_date=2026-12-01"
    partition.mkdir()
    (partition / "products.jsonl").write_bytes(b"\n".join(lines) + b"\r\n\n")
    plan = Plan("dataset", None, {}, {}, [Partition(partition.name, str(partition), True)])
    result = IngestResult("dataset", "v0", "v0", {}, {}, {})
    products = read_products(plan, result)
    assert sorted(p.product_id for p in products) == sorted(kept)
    assert result.rejected == expected
    assert result.stages["lines"] == len(lines) and result.stages["products"] == len(kept)


def request_line(rng: random.Random, number: int) -> tuple[str, str | None]:
    """A requests-file line (the image a.png beside it) and the reason it must be skipped for."""
    good = {"image": "a.png", "boxes": [[0.1, 0.1, 0.3, 0.2]], "info": "保温杯", "id": f"r-{number}"}
    bad = ["truncated", "deep", "huge", "unsafe_id", "path", "absent", "box", "boxes", "info", "shape", "missing"]
    kind = rng.choice(["good"] * 4 + bad)
    changes: dict = {
        "unsafe_id": {"id": rng.choice(UNSAFE_IDS)},
        "path": {"image": rng.choice(["../a.png", "/etc/passwd", "a\x00.png"])},
        "absent": {"image": "b.png"},
        "box": {"boxes": [rng.choice(["0.1_0.1", [1, 2], ["a", "b", "c", "d"], [[1], [2], [3], [4]], 7])]},
        "boxes": {"boxes": [[0.1, 0.1, 0.2, 0.2]] * 40},
        "info": {"info": rng.choice([3, None, ["x"]])},
    }
    reasons = {"unsafe_id": "unsafe_id", "path": "unsafe_path", "absent": "missing_image", "box": "bad_box"}
    reasons.update(boxes="too_many_boxes", info="bad_type")
    if kind == "good":
        return json.dumps(good, ensure_ascii=False), None
    if kind in changes:
        return json.dumps({**good, **changes[kind]}), reasons[kind]
    if kind == "truncated":
        text = json.dumps(good)
        return text[: rng.randrange(1, len(text) - 1)], "bad_json"
    if kind == "deep":
        return nested(rng), "too_deep"
    if kind == "huge":
        return json.dumps({**good, "info": "x" * MAX_JSON_CHARS}), "too_large"
    if kind == "shape":
        return rng.choice(["[1, 2]", "3", "null"]), "bad_type"
    value = dict(good)
    del value[rng.choice(["image", "boxes", "info"])]
    return json.dumps(value), "missing_key"


@pytest.mark.parametrize("seed", range(6))
def test_the_request_reader_counts_every_bad_line_and_keeps_every_good_one(seed, tmp_path):
    rng = random.Random(100 + seed)
    Image.new("RGB", (64, 48), (200, 200, 200)).save(tmp_path / "a.png")
    texts, expected, kept = [], Counter(), []
    for number in range(40):
        text, reason = request_line(rng, number)
        texts.append(text)
        if reason is None:
            kept.append(f"r-{number}")
        else:
            expected[reason] += 1
    counted = Counter()
    tally = SimpleNamespace(add=SimpleNamespace(remote=lambda reason, _: counted.update([reason])))  # an actor's face
    reader = RequestReader(str(tmp_path), "requests", tally)
    out = reader({"key": np.arange(1, len(texts) + 1), "text": np.array(texts, dtype=object)})
    assert list(out["id"]) == kept
    assert counted == expected
