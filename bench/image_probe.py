"""The image probe: can the model read what only the image shows? No Ray, no MLflow.

    python bench/image_probe.py                                # data/synthetic, preset small, 300 steps
    python bench/image_probe.py --steps 600 --set train.backbone_lr=0.001 --set model.grid=4
    python bench/image_probe.py --image-cells pixels    # the transformer given each cell's pixels, no trunk

A copy of the synthetic dataset keeps only the colour and marker call-outs, each captioned with what
only the image tells (``finish + colour``, the marker's phrase: ``components.data.synthetic.probe``).
A model with no info and no neighbours trains on it, generation only, and writes the val call-outs;
the share written exactly, every ``--every`` steps, is the probe's reading. Chance: 1 in 48 for a
colour call-out with a finish, 1 in 10 for a marker. Exact on as many train images is printed beside
it: low on both is a model that has not learned to read the image yet, not one that fails to generalise.

``--image-cells pixels`` hands the transformer each cell's pixels (4 x 4 averages of its 32 x 32, 48
numbers) in place of the ResNet trunk: if the probe fails with them too, the trunk is not the cause.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from components.bench.study import EncodedSplits, PixelCells, probe_curve
from components.config import load_job_config
from components.data.record.tokenizer import Tokenizer
from components.data.synthetic.probe import write_image_probe


def main(argv: list[str] | None = None) -> list[tuple[int, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="data/synthetic", help="a synthetic dataset with its truth sidecar")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--image-cells", choices=("resnet", "pixels"), default="resnet")
    parser.add_argument("--json", default=None, help="also write the curve to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    job = load_job_config(args.preset, [f"train.steps={args.steps}", *args.overrides])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        kept = write_image_probe(args.dataset, folder)
        print(f"probe: {kept['train']} train and {kept['val']} val images with colour or marker call-outs")
        splits = EncodedSplits(folder, Tokenizer.load(folder), args.val_images)
        cells = PixelCells(job.model.grid) if args.image_cells == "pixels" else None
        curve = probe_curve(job, splits, torch.device(args.device), args.every, image_cells=cells)
    step, val, train = curve[-1]
    seconds = time.perf_counter() - started
    print(f"exact after {step} steps: {val:.3f} on val, {train:.3f} on train ({seconds:.0f} s, {args.device})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"curve": curve, "argv": argv}, handle)
    return curve


if __name__ == "__main__":
    main()
