"""The ablation study on one device (bench/ablation_bench.py), reduced to seconds: no Ray, no MLflow."""

import json
import runpy
from pathlib import Path

import torch

from components.training.study import PixelCells

REPO = Path(__file__).resolve().parents[2]


def test_the_ablation_bench_runs_every_variant_and_seed_with_equal_budgets(tiny_dataset, tmp_path):
    root, _, _ = tiny_dataset
    main = runpy.run_path(str(REPO / "bench" / "ablation_bench.py"))["main"]
    out, raw = tmp_path / "ablation.md", tmp_path / "ablation.json"
    argv = ["--preset", "tiny", "--dataset", str(root), "--steps", "4", "--finetune-steps", "2", "--seeds", "0", "1"]
    argv += ["--variants", "context", "full", "--val-images", "6", "--every", "2", "--threads", "1"]
    main([*argv, "--out", str(out), "--json", str(raw)])
    runs = json.loads(raw.read_text())["runs"]
    assert [(r["variant"], r["seed"]) for r in runs] == [("context", 0), ("full", 0), ("context", 1), ("full", 1)]
    assert all({"CIDEr", "BLEU@4", "Div@2", "human_Div@2"} <= set(r["scores"]) for r in runs)
    # matching accuracy per level is read at steps 2 and 4 of the matching variant only
    assert [[step for step, _ in r["curve"]] for r in runs] == [[], [2, 4], [], [2, 4]]
    assert set(runs[1]["curve"][0][1]) == {"positive", "level1", "level2", "level3"}
    report = out.read_text("utf-8")
    assert "every variant 4 pre-training steps then 2 generation fine-tuning steps" in report
    assert "context <= full on CIDEr" in report and "(in" in report and "of 2 seeds)" in report
    assert "| full | 4 |" in report and "## Table 3: caption-matching pre-training" in report


def test_pixel_cells_are_each_cells_average_pixels_in_row_major_order():
    grid, sub = 2, 2
    images = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    images[0, 0, :32, 32:] = 255  # the top-right cell red
    images[0, 2, 32:, :32] = 255  # the bottom-left cell blue
    images[0, 1, 48:, 48:] = 255  # the bottom-right quarter of the bottom-right cell green
    cells = PixelCells(grid, sub)(images).view(1, grid * grid, 3, sub, sub)  # (1, cells, rgb, sub, sub)
    assert cells.shape == (1, 4, 3, 2, 2) and PixelCells(grid, sub).channels == 12
    means = cells.mean(dim=(3, 4))[0]  # (cells, rgb) in [-1, 1]
    assert means.tolist() == [[-1, -1, -1], [1, -1, -1], [-1, -1, 1], [-1, -0.5, -1]]
    assert cells[0, 3, 1].tolist() == [[-1, -1], [-1, 1]]  # green in the cell's own bottom-right quarter


def test_the_image_probe_trains_on_the_call_outs_with_either_image_cells(tiny_dataset, tmp_path):
    root, _, _ = tiny_dataset
    main = runpy.run_path(str(REPO / "bench" / "image_probe.py"))["main"]
    argv = ["--preset", "tiny", "--dataset", str(root), "--steps", "4", "--every", "2", "--val-images", "4"]
    for cells in ("resnet", "pixels"):
        raw = tmp_path / f"{cells}.json"
        curve = main([*argv, "--threads", "1", "--image-cells", cells, "--json", str(raw)])
        assert [step for step, _, _ in curve] == [2, 4]
        assert all(0.0 <= val <= 1.0 and 0.0 <= train <= 1.0 for _, val, train in curve)
        assert json.loads(raw.read_text())["curve"] == [list(point) for point in curve]
