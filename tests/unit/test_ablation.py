import pytest

from components.evaluation.ablation import (
    VARIANTS,
    ceiling_metric_key,
    ceiling_shares,
    ceilings_from_metrics,
    check_orderings,
    markdown,
    results_from_metrics,
    run_metric_key,
    summarise,
)


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
    assert VARIANTS["full"].train_overrides(1) == {
        "generation_per_matching": (3, 1),
        "negatives": "progressive",
        "seed": 1,
        "curriculum_span": 200_000,
    }
    assert VARIANTS["context"].train_overrides(0)["generation_per_matching"] == (1, 0)
    assert VARIANTS["no-image"].model["use_image"] is False
    # the same fine-tuning for every variant: a gain from matching is not a gain from more steps
    assert VARIANTS["context"].finetune_overrides(100) == VARIANTS["full"].finetune_overrides(100)


def test_summary_orderings_and_table():
    results = {
        "baseline": [{"CIDEr": 10.0, "Div@2": 50.0}, {"CIDEr": 14.0, "Div@2": 52.0}],
        "context": [{"CIDEr": 20.0, "Div@2": 49.0}, {"CIDEr": 22.0, "Div@2": 49.0}],
        "no-info": [{"CIDEr": 30.0, "Div@2": 40.0}],
    }
    summary = summarise(results)
    assert summary["baseline"]["CIDEr"] == pytest.approx((12.0, 2.8284271))
    assert summary["no-info"]["CIDEr"] == (30.0, 0.0)
    checks = dict(check_orderings(results))
    assert checks == {
        "no-info < baseline on CIDEr: 30.0 vs 12.0 (in 0 of 1 seeds)": "does NOT hold",
        "baseline < context on CIDEr: 12.0 vs 21.0 (in 2 of 2 seeds)": "holds",
        "baseline < context on Div@2: 51.0 vs 49.0 (in 0 of 2 seeds)": "does NOT hold",
    }
    text = markdown(results, {"Div@1": 96.0, "Div@2": 75.0}, [0, 1], "python flows/ablate.py", "setting")
    assert "| baseline | - | - | - | 12.0 ± 2.8 | - | 51.0 ± 1.4 | 287.6 | 55.0 |" in text
    assert "does NOT hold: baseline < context on Div@2" in text and "| human |" in text


def test_an_ordering_holds_only_when_every_seed_agrees():
    results = {"fixed": [{"CIDEr": 70.0}, {"CIDEr": 60.0}], "full": [{"CIDEr": 80.0}, {"CIDEr": 55.0}]}
    # the mean says yes (65.0 < 67.5), one seed of two says no: inconclusive, not "holds"
    assert check_orderings(results) == [("fixed < full on CIDEr: 65.0 vs 67.5 (in 1 of 2 seeds)", "inconclusive")]
    three = {"fixed": [{"CIDEr": 1.0}] * 3, "full": [{"CIDEr": 2.0}, {"CIDEr": 3.0}, {"CIDEr": 1.5}]}
    assert check_orderings(three) == [("fixed < full on CIDEr: 1.0 vs 2.2 (in 3 of 3 seeds)", "holds")]


def test_results_read_back_from_parent_run_metrics():
    assert run_metric_key("no-locations", 1, "BLEU-4") == "no-locations/s1_BLEU-4"
    metrics = {
        "full/s1_CIDEr": 54.4,
        "full/s0_CIDEr": 70.5,
        "full/s0_BLEU-4": 8.0,
        "full/s1_BLEU-4": 6.9,
        "no-locations/s0_CIDEr": 48.7,
        "no-locations/s0_human_Div-2": 74.9,
        "no-locations/s0_length_aspect_r": 0.3,  # not a table column
        "unknown/s0_CIDEr": 1.0,  # not a variant
        "system/cpu_utilization_percentage": 50.0,
    }
    results, human, seeds = results_from_metrics(metrics)
    assert seeds == [0, 1]
    assert results == {
        "full": [{"CIDEr": 70.5, "BLEU@4": 8.0}, {"CIDEr": 54.4, "BLEU@4": 6.9}],
        "no-locations": [{"CIDEr": 48.7}],
    }
    assert human == {"Div@2": 74.9}


def test_rebuilding_from_a_run_that_is_not_an_ablation_names_the_option(tmp_path):
    from mlflow.tracking import MlflowClient

    from components.errors import ConfigError
    from components.training.ablation import table_from_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("other")).info.run_id
    with pytest.raises(ConfigError, match="'from_run': run .* is not an ablation's parent run"):
        table_from_run(run_id, uri)
    with pytest.raises(ConfigError, match="'from_run': no run 0123 in sqlite"):
        table_from_run("0123", uri)


def test_a_variant_short_of_its_ceiling_is_reported_underpowered_and_not_ranked():
    def run(info_diag: float, everything: float) -> dict[str, float]:
        return {"CIDEr": 50.0, "field_accuracy_info_diag": info_diag, "field_accuracy_all": everything}

    results = {"no-info": [run(0.1, 0.5), run(0.2, 0.5)], "baseline": [run(0.9, 0.8), run(0.7, 0.6)]}
    ceilings = {"no-info": 0.6, "baseline": 0.8}
    assert ceiling_shares(results, ceilings) == pytest.approx({"no-info": 0.5 / 0.6, "baseline": 0.7 / 0.8})
    checks = dict(check_orderings(results, ceiling_shares(results, ceilings)))
    assert checks["no-info < baseline on field_accuracy_info_diag: 15.0 vs 80.0 (in 2 of 2 seeds)"] == "holds"
    weak = dict(check_orderings(results, {"no-info": 0.5, "baseline": 0.9}))
    key = (
        "no-info < baseline on field_accuracy_info_diag: 15.0 vs 80.0 (in 2 of 2 seeds); no-info at 50% of its ceiling"
    )
    assert weak[key] == "not ranked (underpowered)"
    text = markdown(results, {}, [0, 1], "cmd", "setting", {"no-info": 1.0, "baseline": 0.8})
    assert "| no-info | 15.0 ± 7.1 | - | - | - | - | - | - | - | 50.0 ± 0.0 | 50% underpowered |" in text
    assert "| baseline | 80.0 ± 14.1 | - | - | - | - | - | - | - | 70.0 ± 14.1 | 87% |" in text
    assert "- not ranked (underpowered): no-info < baseline on field_accuracy_info_diag" in text
    assert "Field accuracy" not in markdown({"baseline": [{"CIDEr": 1.0}]}, {}, [0], "cmd", "setting")


def test_full_sits_in_both_tables_but_has_one_field_accuracy_row():
    results = {"full": [{"CIDEr": 50.0, "field_accuracy_all": 0.5}], "level1": [{"CIDEr": 40.0}]}
    text = markdown(results, {}, [0], "cmd", "setting", {"full": 1.0})
    fields = text.split("## Field accuracy")[1].split("\n## ")[0]
    assert fields.count("| full |") == 1 and "| level1 |" not in fields  # level1 has no field metrics
    assert text.count("| 5 I+II+III progressive |") == 1


def test_ceilings_are_logged_on_the_parent_run_and_read_back():
    assert ceiling_metric_key("no-info") == "ceiling/no-info_field_accuracy_all"
    metrics = {"ceiling/no-info_field_accuracy_all": 0.61, "ceiling/unknown_field_accuracy_all": 1.0, "x": 2.0}
    assert ceilings_from_metrics(metrics) == {"no-info": 0.61}
    results, _, _ = results_from_metrics({"full/s0_field_accuracy_ctx_diag": 0.4, "full/s0_role_accuracy_brand": 1.0})
    assert results == {"full": [{"field_accuracy_ctx_diag": 0.4}]}
