"""The dataset's table at CapOnImage2M's size: its import, a read through Ray Data, an ingest, appends.

    python bench/table_scale_bench.py [--sizes 210000 2100000] [--folder /tmp/table-scale] [--source data/synthetic]

For each size N it writes a records-only release folder (``ref_captions.json`` and split files: the
synthetic release's records replicated under new ids; images are not needed to read records), then,
each in a fresh process (its peak RSS is that step's alone):

- ``import``: the release files streamed into the table (``dataset_table.py import``): seconds, peak RSS;
- ``read``: the train split as a training job reads it, through Ray Data's Delta Lake reader at the
  table's version (the driver plans the read, an actor consumes it through ``streaming_split`` like a
  Ray Train worker): the driver's peak RSS, the time to the first batch, records/s over a whole pass
  (Ray's start timed apart);
- ``appends``: ten commits of 300 new training records each (the commit of a 300-image ingest, OCR
  apart): seconds and bytes written per commit, the driver's peak RSS, and the storage after them
  against what the earlier layout kept for ten versions (a whole copy of the release files and of
  their index in each ``versions/<v>/``);
- ``ingest``: one crawl partition of ``--crawl-images`` synthetic products (rendered once, seed 7)
  ingested for real, OCR in this process (one engine): plan, OCR, cleaning, dedup against the
  version, the commit. Wall seconds, peak RSS, bytes written into the table and into ``images/``.
  The fluency model is the source's (``ingest/fluency.json`` fitted once on its training captions and
  copied: the replicated records' captions are the source's), so that the one-off fit is not counted.

No GPU, no MLflow.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from components.data.record.tokenizer import VOCABULARY_FILE
from components.data.release.format import CAPTIONS_FILE, SPLIT_FILES, write_names

HELD_OUT = 2_000  # val and test images each; the rest is train
CRAWL_DATE, CRAWL_SEED = "2026-12-07", 7  # the ingested partition (the source's seed is another)
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
    """This process's peak RSS: ``VmHWM`` (getrusage's ``ru_maxrss`` survives ``execve``, so a child
    would report its parent's peak when that was higher)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_import(dataset: str) -> dict:
    from components.data.release.table import TABLE_DIR, VOCABULARY_DIR, import_release

    for folder in (TABLE_DIR, VOCABULARY_DIR, "images"):  # fresh: the figures count this run's files only
        shutil.rmtree(Path(dataset, folder), ignore_errors=True)
    start = time.perf_counter()
    table = import_release(dataset)
    return {"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb(), "rows": table.splits["train"].rows}


def table_split(dataset: str):
    """The pipeline's read (``build_dataset``): Ray Data's Delta Lake reader at the table's version."""
    from components.data.release.table import open_table, ray_rows

    table = open_table(dataset)
    return ray_rows(table, "train", max(1, min(table.splits["train"].rows // BATCH_ROWS, 200)))


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def measure_appends(dataset: str, commits: int = 10, rows: int = 300) -> dict:
    """``commits`` appends of ``rows`` records (values cycled from the split's first rows)."""
    from components.data.release.table import append_rows, head_rows, open_table

    table = open_table(dataset)
    values = [row["record"] for row in head_rows(table, "val", rows)]
    seconds, written = [], []
    for commit in range(commits):
        before, start = folder_bytes(Path(dataset, "table")), time.perf_counter()
        new = [(f"a{commit:02d}-{k:05d}", values[k % len(values)]) for k in range(rows)]
        table = append_rows(table, "train", new, partitions={f"crawl_date=bench-{commit:02d}": "key"})
        seconds.append(time.perf_counter() - start)
        written.append(folder_bytes(Path(dataset, "table")) - before)
    return {
        "seconds": seconds,
        "bytes": written,
        "rss_mb": peak_rss_mb(),
        "table_bytes": folder_bytes(Path(dataset, "table")),
    }


def crawl_partition(folder: Path, images: int) -> Path:
    """The crawl every size ingests: ``images`` products, rendered once."""
    from components.data.synthetic.build import SyntheticSpec, build_crawl

    crawl = folder / f"crawl-{images}"
    if not (crawl / f"crawl_date={CRAWL_DATE}" / "_SUCCESS").is_file():
        build_crawl(SyntheticSpec(images, CRAWL_SEED), crawl, CRAWL_DATE, workers=os.cpu_count() or 1)
    return crawl


def source_fluency(source: Path, dataset: Path) -> None:
    """The source's n-gram fluency model (fitted once on its training captions) as the dataset's."""
    from components.config import load_job_config
    from components.data.ingest.partitions import FLUENCY_FILE, prepare_fluency
    from components.data.release.table import ensure_table

    section = load_job_config("small", [f"data.dataset={source}"]).ingest
    prepare_fluency(str(source), ensure_table(str(source)), section)
    (dataset / FLUENCY_FILE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / FLUENCY_FILE, dataset / FLUENCY_FILE)


def measure_ingest(dataset: str, crawl: str) -> dict:
    """One partition ingested into the dataset's latest version, OCR in this process."""
    from components.config import load_job_config
    from components.data.ingest.partitions import ocr_in_process, plan_ingest, run_ingest

    section = load_job_config("small", [f"data.dataset={dataset}"]).ingest
    before = {name: folder_bytes(Path(dataset, name)) for name in ("table", "images")}
    start = time.perf_counter()
    result = run_ingest(plan_ingest(dataset, crawl, section), section, ocr=ocr_in_process)
    seconds = time.perf_counter() - start
    written = {name: folder_bytes(Path(dataset, name)) - size for name, size in before.items()}
    found = {"seconds": seconds, "rss_mb": peak_rss_mb(), "added": result.stages["added"]}
    return {
        **found,
        "rejected": dict(result.rejected),
        "table_bytes": written["table"],
        "image_bytes": written["images"],
    }


def measure_read(dataset: str) -> dict:
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
    shard = table_split(dataset).streaming_split(1)[0]
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


def snapshot_bytes(dataset: Path, versions: int) -> int:
    """What the earlier layout kept for ``versions`` versions: each a whole copy of the release files
    and of their index (about the table's size: the same rows as Parquet)."""
    release = sum((dataset / name).stat().st_size for name in (CAPTIONS_FILE, *SPLIT_FILES.values()))
    return versions * (release + folder_bytes(dataset / "table"))


def report(results: dict[int, dict]) -> str:
    sizes = sorted(results)
    lines = [
        "| | " + " | ".join(f"N = {n:,}" for n in sizes) + " |",
        "| --- |" + " ---: |" * len(sizes),
    ]
    mb = 1 << 20
    rows = [
        ("import (once): seconds", lambda r: f"{r['import']['seconds']:.1f}"),
        ("import: peak RSS (MB)", lambda r: f"{r['import']['rss_mb']:,.0f}"),
        ("read: driver peak RSS (MB)", lambda r: f"{r['read']['rss_mb']:,.0f}"),
        ("read: first batch (s)", lambda r: f"{r['read']['first_batch_s']:.1f}"),
        ("read: records/s, whole pass", lambda r: f"{r['read']['records_per_s']:,.0f}"),
        ("read: Ray start (s)", lambda r: f"{r['read']['ray_start_s']:.1f}"),
        ("append of 300 records: seconds (median of 10)", lambda r: f"{np.median(r['appends']['seconds']):.2f}"),
        ("append: kB written (median)", lambda r: f"{np.median(r['appends']['bytes']) / 1024:,.0f}"),
        ("appends: driver peak RSS (MB)", lambda r: f"{r['appends']['rss_mb']:,.0f}"),
        ("storage after 10 appends: table (MB)", lambda r: f"{r['appends']['table_bytes'] / mb:,.0f}"),
        ("storage: 10 versions of the earlier layout (MB)", lambda r: f"{r['snapshots'] / mb:,.0f}"),
        ("ingest of a crawl partition: seconds", lambda r: f"{r['ingest']['seconds']:.1f}"),
        ("ingest: images added", lambda r: f"{r['ingest']['added']}"),
        ("ingest: peak RSS (MB)", lambda r: f"{r['ingest']['rss_mb']:,.0f}"),
        ("ingest: kB written into the table", lambda r: f"{r['ingest']['table_bytes'] / 1024:,.0f}"),
        ("ingest: kB of images written", lambda r: f"{r['ingest']['image_bytes'] / 1024:,.0f}"),
    ]
    lines += [f"| {name} | " + " | ".join(cell(results[n]) for n in sizes) + " |" for name, cell in rows]
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        for name, key in (("read: driver peak RSS", "read"), ("appends: driver peak RSS", "appends"),
                          ("ingest: peak RSS", "ingest")):  # fmt: skip
            lines.append(f"{name} at N = {sizes[-1]:,} / at N = {sizes[0]:,}: "
                         f"{large[key]['rss_mb'] / small[key]['rss_mb']:.2f}")  # fmt: skip
        seconds = np.median(large["appends"]["seconds"]) / np.median(small["appends"]["seconds"])
        lines.append(f"append seconds at N = {sizes[-1]:,} / at N = {sizes[0]:,}: {seconds:.2f}")
        seconds = large["ingest"]["seconds"] / small["ingest"]["seconds"]
        lines.append(f"ingest seconds at N = {sizes[-1]:,} / at N = {sizes[0]:,}: {seconds:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[210_000, 2_100_000])
    parser.add_argument("--folder", default="/tmp/table-scale", help="where the records-only datasets are written")
    parser.add_argument("--source", default="data/synthetic", help="the release whose records are replicated")
    parser.add_argument("--crawl-images", type=int, default=300, help="the ingested partition's products")
    parser.add_argument("--measure", choices=("import", "read", "appends", "ingest"), help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--crawl", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # the child process
        measures = {"import": measure_import, "appends": measure_appends, "read": measure_read}
        found = (
            measure_ingest(args.dataset, args.crawl)
            if args.measure == "ingest"
            else measures[args.measure](args.dataset)
        )
        print(json.dumps(found))
        return
    crawl = crawl_partition(Path(args.folder), args.crawl_images)
    results = {}
    for size in args.sizes:
        dataset = Path(args.folder, f"n{size}")
        if not (dataset / CAPTIONS_FILE).is_file():
            started = time.perf_counter()
            synthesise(Path(args.source), dataset, size)
            print(f"N = {size:,}: wrote {dataset} in {time.perf_counter() - started:.0f} s", flush=True)
        results[size] = {}
        for step in ("import", "read", "ingest", "appends"):  # the snapshots are sized before the appends
            if step == "ingest":
                source_fluency(Path(args.source).resolve(), dataset)
            if step == "appends":
                results[size]["snapshots"] = snapshot_bytes(dataset, 10)
            results[size][step] = in_process("--measure", step, "--dataset", str(dataset), "--crawl", str(crawl))
            print(f"N = {size:,} {step}: {json.dumps(results[size][step])}", flush=True)
    print(report(results))


if __name__ == "__main__":
    main()
