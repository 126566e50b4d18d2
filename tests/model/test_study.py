"""The ablation study on one device (bench/ablation_bench.py), reduced to seconds: no Ray, no MLflow."""

import json
import runpy
from pathlib import Path

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
