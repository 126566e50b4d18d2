import pytest

from components.evaluation.ablation import VARIANTS, check_orderings, markdown, summarise


def test_variants_cover_both_tables_and_switch_the_right_things():
    assert set(VARIANTS) == {
        "no-locations",
        "no-info",
        "no-image",
        "baseline",
        "context",
        "level1",
        "level12",
        "fixed",
        "full",
    }
    assert VARIANTS["baseline"].model == {"neighbours": "none"} and VARIANTS["baseline"].negatives is None
    assert VARIANTS["full"].train_overrides(1, 10.0) == {
        "generation_per_matching": (3, 1),
        "negatives": "progressive",
        "seed": 1,
        "curriculum_scale": 10.0,
    }
    assert VARIANTS["context"].train_overrides(0, 1.0)["generation_per_matching"] == (1, 0)
    assert VARIANTS["no-image"].model["use_image"] is False and VARIANTS["fixed"].finetune


def test_summary_orderings_and_table():
    results = {
        "baseline": [{"CIDEr": 10.0, "Div@2": 50.0}, {"CIDEr": 14.0, "Div@2": 52.0}],
        "context": [{"CIDEr": 20.0, "Div@2": 49.0}, {"CIDEr": 22.0, "Div@2": 49.0}],
        "no-info": [{"CIDEr": 30.0, "Div@2": 40.0}],
    }
    summary = summarise(results)
    assert summary["baseline"]["CIDEr"] == pytest.approx((12.0, 2.8284271))
    assert summary["no-info"]["CIDEr"] == (30.0, 0.0)
    checks = dict(check_orderings(summary))
    assert checks == {
        "no-info < baseline on CIDEr: 30.0 vs 12.0": False,
        "baseline < context on CIDEr: 12.0 vs 21.0": True,
        "baseline < context on Div@2: 51.0 vs 49.0": False,
    }
    text = markdown(summary, {"Div@1": 96.0, "Div@2": 75.0}, [0, 1], "python flows/ablate.py", "setting")
    assert "| baseline | - | - | - | 12.0 ± 2.8 | - | 51.0 ± 1.4 | 287.6 | 55.0 |" in text
    assert "does NOT hold: baseline < context on Div@2" in text and "| human |" in text
