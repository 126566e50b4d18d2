"""Publishing rates over many boxes: chosen captions against each box's most likely candidate."""

import pytest

from components.config import PUBLISH_CHECKS
from components.publishing.choice import CHECKS
from components.publishing.rates import publishing_rates, violation_rates


def verdict(failed, first_failed, rank=0):
    return {"failed": list(failed), "first_failed": list(first_failed), "rank": rank}


def test_rates_count_the_chosen_and_the_most_likely_captions():
    verdicts = [
        verdict([], []),  # the most likely passes
        verdict([], ["fit", "read_back"], rank=2),  # a lower candidate mends an overflow
        verdict(["compliance"], ["compliance"]),  # none passes: the most likely, its failure named
        verdict([], ["grounding"], rank=1),
    ]
    rates = publishing_rates(verdicts, CHECKS)
    assert rates["publish_fit_rate"] == 1.0 and rates["publish_first_fit_rate"] == 0.75
    assert rates["publish_read_back_rate"] == 1.0 and rates["publish_first_read_back_rate"] == 0.75
    assert rates["publish_compliance_violation_rate"] == 0.25 == rates["publish_first_compliance_violation_rate"]
    assert rates["publish_grounding_violation_rate"] == 0.0 and rates["publish_first_grounding_violation_rate"] == 0.25
    assert rates["publish_ready_rate"] == 0.75 and rates["publish_first_ready_rate"] == 0.25
    assert rates["publish_chose_other_rate"] == 0.5
    assert violation_rates(rates) == {"compliance": 0.25, "grounding": 0.0, "fit": 0.0, "read_back": 0.0}


def test_only_the_checks_that_ran_have_rates():
    rates = publishing_rates([verdict([], [])], ("compliance",))
    assert set(rates) == {
        "publish_compliance_violation_rate",
        "publish_first_compliance_violation_rate",
        "publish_ready_rate",
        "publish_first_ready_rate",
        "publish_chose_other_rate",
    }
    assert violation_rates(rates) == {"compliance": 0.0}
    assert publishing_rates([], CHECKS) == {}
    with pytest.raises(ValueError, match="unknown \\['spelling'\\]"):
        publishing_rates([verdict([], [])], ("spelling",))


def test_the_config_names_the_checks_the_publisher_runs_in_its_order():
    assert PUBLISH_CHECKS == CHECKS
