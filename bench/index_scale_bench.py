"""A split of CapOnImage2M's size read two ways: the driver's memory and the time to a first batch.

    python bench/index_scale_bench.py [--sizes 210000 2100000] [--folder /tmp/index-scale] [--source data/synthetic]

For each size N it writes an index-only dataset (``ref_captions.json`` and split files: the synthetic
release's records replicated under new ids; images are not needed to read an index), builds its
Parquet index (time and the builder's peak memory), then, each in a fresh process with its own local
Ray cluster, reads the train split as a training job does (the driver plans the read, an actor
consumes it through ``streaming_split`` like a Ray Train worker) and reports the driver's peak RSS,
the time to the first batch of records in the consumer, and records/s over a whole pass:

- ``json``: the path before the Parquet index: the driver parses ``ref_captions.json`` and the split
  file and hands every record to ``ray.data.from_items``;
- ``index``: the training pipeline's read of the Parquet index: the driver reads the manifest and hands
  Ray Data a few hundred row ranges; the workers read the rows (``components.data.pipeline.stream``).

Ray's start is timed apart. No GPU, no MLflow.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from components.data.record.tokenizer import VOCABULARY_FILE
from components.data.release.format import CAPTIONS_FILE, SPLIT_FILES, read_names, write_names

HELD_OUT = 2_000  # val and test images each; the rest is train
BATCH_ROWS = 16  # the pipeline's batch of images, and so its blocks


def synthesise(source: Path, folder: Path, size: int) -> None:
    """``size`` records cycled from ``source`` under new ids, written one member at a time."""
    records = json.loads((source / CAPTIONS_FILE).read_text("utf-8"))
    values = [json.dumps(v, ensure_ascii=False) for v in records.values()]
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"r{k:08d}" for k in range(size)])
    with open(folder / CAPTIONS_FILE, "w", encoding="utf-8") as handle:
        handle.write("{")
        for k in range(size):
            handle.write(f'{"," if k else ""}\n"{ids[k]}": {values[k % len(values)]}')
        handle.write("\n}")
    write_names(folder / SPLIT_FILES["val"], list(ids[:HELD_OUT]))
    write_names(folder / SPLIT_FILES["test"], list(ids[HELD_OUT : 2 * HELD_OUT]))
    write_names(folder / SPLIT_FILES["train"], list(ids[2 * HELD_OUT :]))
    (folder / VOCABULARY_FILE).write_bytes((source / VOCABULARY_FILE).read_bytes())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_build(dataset: str) -> dict:
    from components.data.release.index import build_index

    start = time.perf_counter()
    index = build_index(dataset)
    return {"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb(), "rows": index.splits["train"].rows}


def json_split(dataset: str):
    """The driver's read before the Parquet index: the whole captions file, then ``from_items``."""
    import ray

    data = json.loads(Path(dataset, CAPTIONS_FILE).read_bytes().decode("utf-8"))
    with io.BytesIO(Path(dataset, SPLIT_FILES["train"]).read_bytes()) as handle:
        ids = read_names(handle)
    rows = [{"image_id": i, "record": json.dumps(data[i], ensure_ascii=False) if i in data else ""} for i in ids]
    return ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // BATCH_ROWS, 200)))


def index_split(dataset: str):
    """The pipeline's read: row ranges from the manifest, read by the workers (``build_dataset``)."""
    from components.data.pipeline.stream import read_ranges, row_ranges
    from components.data.release.index import ensure_index

    index = ensure_index(dataset)
    blocks = max(1, min(index.splits["train"].rows // BATCH_ROWS, 200))
    return row_ranges(index, "train", blocks).map_batches(read_ranges, batch_size=None)


def measure_read(dataset: str, path: str) -> dict:
    """Plan the split's read on this driver and consume it in an actor, as Ray Train's workers do
    (through ``streaming_split``): the driver's RSS is what planning costs it."""
    import ray

    @ray.remote(num_cpus=0)
    class Reader:  # stands in for a training worker
        def read(self, shard, started: float) -> tuple[float, int, float]:
            first, rows = None, 0
            for batch in shard.iter_batches(batch_size=4096, batch_format="pyarrow"):
                first = first or time.time() - started
                rows += batch.num_rows
            return first, rows, time.time() - started

    began = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    reader = Reader.remote()
    ray.get(reader.__ray_ready__.remote())
    ray_start = time.perf_counter() - began
    started = time.time()
    shard = (json_split if path == "json" else index_split)(dataset).streaming_split(1)[0]
    first, rows, seconds = ray.get(reader.read.remote(shard, started))
    ray.shutdown()
    return {
        "ray_start_s": ray_start,
        "first_batch_s": first,
        "records": rows,
        "records_per_s": rows / seconds,
        "rss_mb": peak_rss_mb(),
    }


def in_process(*args: str) -> dict:
    """One measurement in a fresh interpreter: its peak RSS is the driver's alone."""
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict[int, dict]) -> str:
    sizes = sorted(results)
    lines = [
        "| | " + " | ".join(f"N = {n:,}" for n in sizes) + " |",
        "| --- |" + " ---: |" * len(sizes),
    ]
    rows = [
        ("index build (once): seconds", lambda r: f"{r['build']['seconds']:.1f}"),
        ("index build: peak RSS (MB)", lambda r: f"{r['build']['rss_mb']:,.0f}"),
    ]
    for path in ("json", "index"):
        rows += [
            (f"{path}: driver peak RSS (MB)", lambda r, p=path: f"{r[p]['rss_mb']:,.0f}"),
            (f"{path}: first batch (s)", lambda r, p=path: f"{r[p]['first_batch_s']:.1f}"),
            (f"{path}: records/s, whole pass", lambda r, p=path: f"{r[p]['records_per_s']:,.0f}"),
            (f"{path}: Ray start (s)", lambda r, p=path: f"{r[p]['ray_start_s']:.1f}"),
        ]
    lines += [f"| {name} | " + " | ".join(cell(results[n]) for n in sizes) + " |" for name, cell in rows]
    if len(sizes) > 1:
        small, large = results[sizes[0]]["index"]["rss_mb"], results[sizes[-1]]["index"]["rss_mb"]
        lines.append(f"\nindex: driver peak RSS at N = {sizes[-1]:,} / at N = {sizes[0]:,}: {large / small:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[210_000, 2_100_000])
    parser.add_argument("--folder", default="/tmp/index-scale", help="where the index-only datasets are written")
    parser.add_argument("--source", default="data/synthetic", help="the release whose records are replicated")
    parser.add_argument("--paths", nargs="+", choices=("json", "index"), default=["json", "index"])
    parser.add_argument("--measure", choices=("build", "json", "index"), help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # the child process
        found = measure_build(args.dataset) if args.measure == "build" else measure_read(args.dataset, args.measure)
        print(json.dumps(found))
        return
    results = {}
    for size in args.sizes:
        dataset = Path(args.folder, f"n{size}")
        if not (dataset / CAPTIONS_FILE).is_file():
            started = time.perf_counter()
            synthesise(Path(args.source), dataset, size)
            print(f"N = {size:,}: wrote {dataset} in {time.perf_counter() - started:.0f} s", flush=True)
        results[size] = {"build": in_process("--measure", "build", "--dataset", str(dataset))}
        for path in args.paths:
            results[size][path] = in_process("--measure", path, "--dataset", str(dataset))
            print(f"N = {size:,} {path}: {json.dumps(results[size][path])}", flush=True)
    print(report(results))


if __name__ == "__main__":
    main()
