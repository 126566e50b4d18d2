"""The hardening probes: bad input and injected faults, tried as a hostile user and an unlucky operator
would, each against the real code, and the outcome as a table.

    python bench/hardening_probes.py            # 45 probes, about a minute; no Ray, sqlite MLflow
    python bench/hardening_probes.py --full     # also the ones that need Ray: a second local cluster,
                                                # and a retrain killed at every crash point (pytest)

Each probe says what must happen and reports ``ok`` when it does (an error naming the record, field
or key; a count by reason; a refusal with its reason; a state the same command completes), ``warn``
when the input is accepted in a way a person should know about, ``fail`` when it crashes, loses
good data or stores a secret. The exit code is the number of failures (0: all held). The counts go
into docs/reliability.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from components.config import load_job_config  # noqa: E402
from components.errors import CapOnImageError, ConfigError  # noqa: E402


@dataclass
class Probe:
    area: str
    name: str
    run: Callable[[Path], tuple[str, str]]  # (ok / warn / fail, what happened)
    full: bool = False  # needs Ray: only with --full


PROBES: list[Probe] = []


def probe(area: str, name: str, full: bool = False):
    def register(function):
        PROBES.append(Probe(area, name, function, full))
        return function

    return register


def expect(condition: bool, detail: str) -> tuple[str, str]:
    return ("ok" if condition else "fail"), detail


# -- outside JSON lines and ids ---------------------------------------------------------------------
def crawl_rejection(line: str) -> str:
    from components.data.ingest.crawl import parse_product
    from components.data.record.rejection import RecordRejected

    try:
        parse_product("crawl_date=2026-12-01", 1, line)
    except RecordRejected as rejected:
        return rejected.reason
    return "kept"


def product(**changes) -> str:
    value = {"product_id": "p-1", "title": "保温杯", "attributes": {"容量": "500ml"}, "image": "i/1.jpg", **changes}
    return json.dumps(value)


for label, line, reason in [
    ("100,000 '[' in one crawl line", "[" * 100_000, "too_deep"),
    ("a 2 MB crawl line", product(title="x" * 2_000_000), "too_large"),
    ("a truncated crawl line", product()[:30], "bad_json"),
    ("a product id holding NUL", product(product_id="p\x00"), "unsafe_id"),
    ("a product id with a trailing newline", product(product_id="p-1\n"), "unsafe_id"),
    ("a product id with an unpaired surrogate", product(product_id="p\ud800"), "unsafe_id"),
    ("a product id climbing out (../../etc)", product(product_id="../../etc"), "unsafe_id"),
    ("a product id of 300 characters", product(product_id="p" * 300), "unsafe_id"),
]:

    @probe("input", label)
    def _crawl(tmp: Path, line=line, reason=reason) -> tuple[str, str]:
        found = crawl_rejection(line)
        return expect(found == reason, f"rejected as {found}")


def read_partition(tmp: Path, lines: list[bytes]):
    from components.data.ingest.crawl import Partition
    from components.data.ingest.partitions import IngestResult, Plan, read_products

    partition = tmp / "crawl_date=2026-12-01"
    partition.mkdir(exist_ok=True)
    (partition / "products.jsonl").write_bytes(b"\n".join(lines))
    plan = Plan("d", None, {}, {}, [Partition(partition.name, str(partition), True)])
    result = IngestResult("d", "v0", "v0", {}, {}, {})
    return read_products(plan, result), result


@probe("input", "a raw U+2028 inside a product's title")
def _line_separator(tmp: Path) -> tuple[str, str]:
    lines = [
        json.dumps(json.loads(product(title="a\u2028b")), ensure_ascii=False).encode(),
        product(product_id="p-2").encode(),
    ]
    products, result = read_partition(tmp, lines)
    return expect(
        len(products) == 2 and not result.rejected, f"{len(products)} products, rejected {dict(result.rejected)}"
    )


@probe("input", "bytes that are not UTF-8 in one crawl line")
def _not_utf8(tmp: Path) -> tuple[str, str]:
    lines = [
        b'{"product_id": "p-1", "title": "\xff\xfe", "attributes": [], "image": "i"}',
        product(product_id="p-2").encode(),
    ]
    products, result = read_partition(tmp, lines)
    return expect(len(products) == 2, f"{len(products)} products kept (the bytes read as U+FFFD)")


def request_reader(tmp: Path, texts: list[str]) -> tuple[list[str], Counter]:
    from components.serving.batch import RequestReader

    Image.new("RGB", (64, 48), (200, 200, 200)).save(tmp / "a.png")
    counted: Counter = Counter()
    tally = SimpleNamespace(add=SimpleNamespace(remote=lambda reason, _: counted.update([reason])))
    out = RequestReader(str(tmp), "requests", tally)(
        {"key": np.arange(1, len(texts) + 1), "text": np.array(texts, dtype=object)}
    )
    return list(out["id"]), counted


GOOD_REQUEST = json.dumps({"image": "a.png", "boxes": [[0.1, 0.1, 0.3, 0.2]], "info": "保温杯", "id": "good"})
for label, text, reason in [
    ("a requests line nested 100,000 deep", "[" * 100_000, "too_deep"),
    ("a requests line climbing out of its folder", GOOD_REQUEST.replace('"a.png"', '"../a.png"'), "unsafe_path"),
    (
        "a request with 40 boxes",
        json.dumps({**json.loads(GOOD_REQUEST), "boxes": [[0.1, 0.1, 0.2, 0.2]] * 40}),
        "too_many_boxes",
    ),
    ("a request id holding a control character", GOOD_REQUEST.replace('"good"', '"bad\\u0007"'), "unsafe_id"),
]:

    @probe("input", label)
    def _request(tmp: Path, text=text, reason=reason) -> tuple[str, str]:
        kept, counted = request_reader(tmp, [GOOD_REQUEST, text])
        return expect(kept == ["good"] and counted == Counter({reason: 1}), f"kept {kept}, skipped {dict(counted)}")


@probe("input", "a --boxes file nested 100,000 deep")
def _boxes_file(tmp: Path) -> tuple[str, str]:
    from components.data.transforms.requests import read_json

    (tmp / "boxes.json").write_text("[" * 100_000)
    try:
        read_json(str(tmp / "boxes.json"), "--boxes")
    except ConfigError as err:
        return expect("too_deep" in str(err), str(err)[:90])
    return "fail", "accepted"


# -- dataset records and images -----------------------------------------------------------------------
def record_value(**changes) -> dict:
    value = {"info": "保温杯", "all_locs": ["0.1_0.1_0.4_0.3"], "ocr_locs": ["0.1_0.1_0.4_0.3"], "ocr_txts": ["保温"]}
    return {**value, **changes}


@probe("input", "an image id with an unpaired surrogate in the table")
def _surrogate_index(tmp: Path) -> tuple[str, str]:
    from components.data.record.rejection import RecordRejected
    from components.data.release.format import parse_record_value, write_names
    from components.data.release.table import import_release, read_split

    root = tmp / "ds"
    root.mkdir()
    (root / "ref_captions.json").write_text(json.dumps({"ok": record_value(), "x\ud800": record_value()}))
    write_names(root / "trn_names.npy", ["ok", "x\ud800"])
    import_release(str(root))
    reasons = []
    for row in read_split(str(root), "train"):
        try:
            parse_record_value(row["image_id"], json.loads(row["record"]), None)
            reasons.append("kept")
        except RecordRejected as rejected:
            reasons.append(rejected.reason)
    return expect(reasons == ["kept", "unsafe_id"], f"imported; records: {reasons}")


@probe("input", "a caption holding an unpaired surrogate")
def _surrogate_caption(tmp: Path) -> tuple[str, str]:
    from components.data.record.rejection import RecordRejected
    from components.data.release.format import parse_record_value

    try:
        parse_record_value("a", record_value(ocr_txts=["保\udc00"]), None)
    except RecordRejected as rejected:
        return expect(rejected.reason == "bad_caption", rejected.reason)
    return "fail", "accepted"


def image_rejection(tmp: Path, name: str, data: bytes | None) -> str:
    from components.data.record.images import open_image
    from components.data.record.rejection import RecordRejected

    if data is not None:
        (tmp / name).write_bytes(data)
    try:
        open_image(str(tmp), name)
    except RecordRejected as rejected:
        return rejected.reason
    return "kept"


def bomb_png(side: int = 100_000) -> bytes:
    """60 bytes of PNG whose header declares ``side`` x ``side`` pixels, its checksums right."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


for label, name, data, reason in [
    ("a decompression bomb (100,000 x 100,000 header)", "bomb.png", bomb_png(), "oversized_image"),
    ("a corrupt PNG", "corrupt.png", b"\x89PNG\r\n\x1a\n not really", "corrupt_image"),
    ("an image path holding NUL", "a\x00.png", None, "unsafe_path"),
    ("an image path climbing out", "../../etc/passwd", None, "unsafe_path"),
]:

    @probe("input", label)
    def _image(tmp: Path, name=name, data=data, reason=reason) -> tuple[str, str]:
        found = image_rejection(tmp, name, data)
        return expect(found == reason, f"rejected as {found}")


@probe("input", "an id listed twice in a split")
def _listed_twice(tmp: Path) -> tuple[str, str]:
    from components.data.release.format import write_names
    from components.data.release.table import import_release

    root = tmp / "ds"
    root.mkdir()
    (root / "ref_captions.json").write_text(json.dumps({"a": record_value(), "b": record_value()}))
    write_names(root / "trn_names.npy", ["a", "b", "a"])
    split = import_release(str(root)).splits["train"]
    return expect(
        (split.rows, split.duplicate_count) == (2, 1), f"{split.rows} rows, {split.duplicate_count} listed twice"
    )


# -- the pyfunc model -------------------------------------------------------------------------------
def tiny_model(tmp: Path):
    import torch

    from components.data.prepare import with_vocabulary
    from components.data.record.tokenizer import Tokenizer
    from components.model import build_model
    from components.model.checkpoint import save_checkpoint
    from components.tracking.pyfunc import CapOnImageModel

    tokenizer = Tokenizer.build(["保温杯一百毫升"], min_count=1)
    job = with_vocabulary(load_job_config("tiny"), tokenizer)
    torch.manual_seed(0)
    save_checkpoint(tmp / "ckpt", build_model(job.model).state_dict(), {"step": 0}, job.as_dict(), tokenizer)
    return CapOnImageModel.from_checkpoint(tmp / "ckpt")


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 180, 160)).save(buffer, "PNG")
    return buffer.getvalue()


@probe("pyfunc", "one corrupt image among good rows")
def _pyfunc_rows(tmp: Path) -> tuple[str, str]:
    import pandas as pd

    good = {"image": png(), "info": "保温杯", "boxes": ["0.1_0.1_0.4_0.3"]}
    frame = pd.DataFrame([good, {**good, "image": b"not an image"}, good, {**good, "id": "p\n"}], dtype=object)
    answered = tiny_model(tmp).predict(None, frame)
    errors = list(answered["error"])
    captioned = [len(c) for c in answered["captions"]]
    held = errors[0] == errors[2] == "" and "corrupt_image" in errors[1] and "unsafe_id" in errors[3]
    return expect(held and captioned == [1, 0, 1, 0], f"errors {[e[:30] for e in errors]}")


@probe("pyfunc", "beam_size=-3")
def _beam(tmp: Path) -> tuple[str, str]:
    from components.tracking.pyfunc import beam_param

    try:
        beam_param({"beam_size": -3})
    except ValueError as err:
        return expect("beam_size" in str(err), str(err))
    return "fail", "accepted"


# -- configuration ------------------------------------------------------------------------------------
for label, setting in [
    ("retrain.bootstrap_samples=1", "retrain.bootstrap_samples=1"),
    ("retrain.lock_lease_s=1", "retrain.lock_lease_s=1"),
    ("ingest.short_side=100000", "ingest.short_side=100000"),
    ("train.images_per_batch=1000", "train.images_per_batch=1000"),
    ("ingest.vocabulary_min_count=0", "ingest.vocabulary_min_count=0"),
    ("train.lr=-0.1", "train.lr=-0.1"),
    ("an unknown key (train.lrr)", "train.lrr=0.1"),
]:

    @probe("config", label)
    def _config(tmp: Path, setting=setting) -> tuple[str, str]:
        try:
            load_job_config("tiny", [setting], task="retrain")
        except ConfigError as err:
            return expect(setting.split("=")[0] in str(err), str(err)[:100])
        return "fail", "accepted"


@probe("config", "ingest.near_duplicate_share=0")
def _share_zero(tmp: Path) -> tuple[str, str]:
    load_job_config("tiny", ["ingest.near_duplicate_share=0"], task="retrain")
    return "warn", "accepted: 0 switches the near-duplicate rule off (documented)"


# -- secrets ------------------------------------------------------------------------------------------
for label, uri, secret in [
    ("a password holding '?'", "s3://AK:se?cret@host/ds", "cret"),
    ("a password holding '#'", "s3://AK:se#cret@host/ds", "cret"),
    ("a password holding '@' and '/'", "s3://AK:s/e@cret@host/ds", "cret"),
    ("a #access_token= fragment", "https://app/cb#access_token=cret&state=1", "cret"),
    ("a pre-signed URL's signature", "https://b/k?X-Amz-Signature=cret&X-Amz-Date=1", "cret"),
]:

    @probe("secrets", label)
    def _redaction(tmp: Path, uri=uri, secret=secret) -> tuple[str, str]:
        from components.redaction import redact

        shown = redact(f"reading {uri}")
        return expect(secret not in shown and any(place in shown for place in ("host", "app", "b/k")), shown)


@probe("secrets", "a credential in a run tag, a param, a text artifact, a registry tag")
def _sinks(tmp: Path) -> tuple[str, str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.tracking.registry import Registry
    from components.tracking.runs import TrackedRun

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("probe", str(tmp / "a"))).info.run_id
    run, location = TrackedRun(uri, run_id), "s3://AK:se?cret@host/ds"
    run.set_tag("dataset", location)
    run.log_params({"data.dataset": location})
    run.log_text(location, "where.txt")
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        model = mlflow.pyfunc.log_model(name="m", python_model=lambda rows: rows, pip_requirements=[])
    registry = Registry(uri, "probe")
    version = registry.add_version(model.model_uri, run_id=run_id, tags={"dataset": location})
    stored = client.get_run(run_id).data
    text = json.dumps([stored.tags, stored.params, client.get_model_version("probe", version.version).tags])
    text += Path(client.download_artifacts(run_id, "where.txt", str(tmp))).read_text()
    mlflow.set_tracking_uri(None)
    return expect("cret" not in text, "no sink holds it" if "cret" not in text else "stored")


# -- the table ---------------------------------------------------------------------------------------
def imported(tmp: Path) -> Path:
    from components.data.release.format import write_names
    from components.data.release.table import import_release

    root = tmp / "ds"
    root.mkdir()
    (root / "ref_captions.json").write_text(json.dumps({"a": record_value(ocr_txts=["保温3小时"])}, ensure_ascii=False))
    write_names(root / "trn_names.npy", ["a"])
    import_release(str(root))
    return root


@probe("table", "two ingests committing on the same version")
def _two_commits(tmp: Path) -> tuple[str, str]:
    from components.data.release.table import ConcurrentCommit, append_rows, open_table

    root = imported(tmp)
    read_by_both = open_table(str(root))
    append_rows(read_by_both, "train", [("b", json.dumps(record_value()))], partitions={"p1": "k1"})
    try:
        append_rows(read_by_both, "train", [("c", json.dumps(record_value()))], partitions={"p2": "k2"})
    except ConcurrentCommit as refused:
        return expect(open_table(str(root)).splits["train"].rows == 2, str(refused)[:90])
    return "fail", "both committed"


@probe("table", "a garbled page behind an intact footer")
def _garbled(tmp: Path) -> tuple[str, str]:
    import pyarrow.parquet as pq

    from components.data.release.table import open_table, read_split
    from components.errors import DatasetFormatError

    root = imported(tmp)
    part = open_table(str(root)).files("train")[0]
    data = bytearray(Path(part).read_bytes())
    chunk = pq.ParquetFile(part).metadata.row_group(0).column(2)
    data[(chunk.dictionary_page_offset or chunk.data_page_offset) + chunk.total_compressed_size - 1] ^= 0xFF
    Path(part).write_bytes(bytes(data))
    try:
        read_split(str(root), "train")
    except DatasetFormatError as problem:
        return expect("CRC" in str(problem) or "checksum" in str(problem).lower(), str(problem)[-60:])
    return "fail", "read as records"


# -- locks, state, killed drivers ------------------------------------------------------------------------
def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@probe("faults", "the champion gate held by a killed process of this machine")
def _gate(tmp: Path) -> tuple[str, str]:
    from mlflow.tracking import MlflowClient

    from components.processes import this_host
    from components.tracking.registry import GATE_LOCK_SUFFIX, Registry

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    expires = repr(time.time() + 3600)
    MlflowClient(uri).create_registered_model(
        f"m{GATE_LOCK_SUFFIX}", tags={"owner": f"{this_host()}:{dead_pid()}:x", "expires": expires}
    )
    started = time.monotonic()
    with Registry(uri, "m").gate(wait_s=10):
        waited = time.monotonic() - started
    return expect(waited < 5, f"taken after {waited:.1f} s (lease: an hour)")


@probe("faults", "the retrain lock held by a killed process")
def _retrain_lock(tmp: Path) -> tuple[str, str]:
    from components.processes import this_host
    from components.retraining.lock import Holder, _encode, acquire

    holder = Holder("x", this_host(), dead_pid(), "a killed retrain", time.time(), time.time())
    (tmp / "lock.json").write_bytes(_encode(holder))
    lock = acquire(str(tmp / "lock.json"), lease_s=600, purpose="probe")
    lock.release()
    return "ok", "taken over"


@probe("faults", "a failed data gate killed after counting, then rerun")
def _gate_count(tmp: Path) -> tuple[str, str]:
    from components.retraining.state import count_failure

    once = count_failure({}, {"p": "k"}, ["too few"], "r", "t1")
    again = count_failure(once, {"p": "k"}, ["too few"], "r", "t1")
    return expect(again["p"]["attempts"] == 1, f"{again['p']['attempts']} attempt counted")


@probe("faults", "an ingest run left RUNNING by a killed driver")
def _abandoned(tmp: Path) -> tuple[str, str]:
    from mlflow.tracking import MlflowClient

    from components.processes import this_host
    from components.tracking.runs import DRIVER_TAG, WORK_TAG, close_abandoned, ensure_experiment

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    job = load_job_config("tiny", [f"tracking.tracking_uri={uri}"])
    client = MlflowClient(uri)
    run_id = client.create_run(
        ensure_experiment(uri, job.tracking.experiment), tags={WORK_TAG: "w", DRIVER_TAG: f"{this_host()}:{dead_pid()}"}
    ).info.run_id
    close_abandoned(job.tracking, "w")
    return expect(client.get_run(run_id).info.status == "KILLED", client.get_run(run_id).info.status)


@probe("faults", "a crawl of characters the vocabulary lacks")
def _vocabulary(tmp: Path) -> tuple[str, str]:
    from components.data.ingest.partitions import IngestResult, grow_vocabulary, oov_share
    from components.data.record.boxes import Box
    from components.data.record.tokenizer import Tokenizer
    from components.data.release.format import ImageRecord

    base = Tokenizer.build(["保温杯"], min_count=1)
    box = Box(0.1, 0.1, 0.4, 0.3)
    records = [ImageRecord(f"n{i}", "新品", (box,), (box,), ("新品杯",)) for i in range(3)]
    result = IngestResult("d", "0", "0", {}, {}, {})
    result.new_records = records
    before = oov_share(records, base)
    grow_vocabulary(result, base, 2)
    after = oov_share(records, result.vocabulary)
    return expect(
        before > 0.5 and after == 0, f"outside the vocabulary: {before:.0%} before it grew, {after:.0%} after"
    )


# -- with Ray (--full) -----------------------------------------------------------------------------------
@probe("faults", "a second flow starting a local Ray cluster beside one", full=True)
def _second_cluster(tmp: Path) -> tuple[str, str]:
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False)
    try:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        code = "from components.cluster import check_can_start; check_can_start()"
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    finally:
        ray.shutdown()
    return expect("another Ray cluster runs on this machine" in done.stderr, done.stderr.strip().splitlines()[-1][:100])


@probe("faults", "a retrain killed at every crash point, then rerun (pytest)", full=True)
def _crash_points(tmp: Path) -> tuple[str, str]:
    test = "tests/flows/test_retrain_flow.py::test_the_first_retrain_pretrains_fine_tunes_and_promotes"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", test], cwd=REPO, capture_output=True, text=True
    )
    return expect(done.returncode == 0, done.stdout.strip().splitlines()[-1][:100])


# -- running them -----------------------------------------------------------------------------------------
def run_probe(item: Probe) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="probe-") as folder:
        try:
            return item.run(Path(folder))
        except CapOnImageError as err:
            return "fail", f"{type(err).__name__}: {err}"[:110]
        except BaseException as err:  # noqa: BLE001 a probe that crashes is the finding
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            return "fail", last[:110]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also the probes that start Ray")
    args = parser.parse_args(argv)
    chosen = [p for p in PROBES if args.full or not p.full]
    counts: Counter = Counter()
    print(f"{'area':<8} {'probe':<60} {'outcome':<7} what happened")
    for item in chosen:
        outcome, detail = run_probe(item)
        counts[outcome] += 1
        print(f"{item.area:<8} {item.name[:60]:<60} {outcome:<7} {detail}")
    skipped = len(PROBES) - len(chosen)
    print(
        f"\n{len(chosen)} probes: {counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail"
        + (f" ({skipped} more with --full)" if skipped else "")
    )
    return counts["fail"]


if __name__ == "__main__":
    sys.exit(main())
