import pytest

from components.config import JobConfig
from components.errors import ConfigError
from components.metric_names import NEGATIVE_LEVELS, VALIDATION_CIDER, metric_key, named, section_of


def test_a_metric_is_logged_under_its_section_and_keeps_its_own_name():
    assert metric_key("val_subset", "CIDEr") == VALIDATION_CIDER == "val_subset/CIDEr"
    assert named("val", {"CIDEr": 31.5, "BLEU-4": 8.0}) == {"val/CIDEr": 31.5, "val/BLEU-4": 8.0}
    assert [section_of(n) for n in ("val/CIDEr", "val_subset/CIDEr", "system/cpu", "CIDEr")] == [
        "val",
        "val_subset",
        "system",
        "",
    ]
    assert NEGATIVE_LEVELS == ("another_image", "another_box", "neighbour")  # levels I, II, III in draw order


def test_the_tune_metric_defaults_to_validation_cider_and_must_be_one_training_reports():
    assert JobConfig.from_dict({}).tune.metric == "val_subset/CIDEr"
    assert JobConfig.from_dict({"tune": {"metric": "train/loss_generation", "mode": "min"}}).tune.metric
    for name in ("val_cider", "val/CIDEr", "CIDEr"):  # an old name, an evaluation's, a bare score
        with pytest.raises(ConfigError, match=r"tune\.metric.*under train/ or val_subset/.*val_subset/CIDEr"):
            JobConfig.from_dict({"tune": {"metric": name}})
