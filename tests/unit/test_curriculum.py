import pytest

from components.training.curriculum import level_probabilities, progressive


@pytest.mark.parametrize(
    "step,expected",
    [
        (1000, (0.502, 0.495, 0.003)),
        (10_000, (0.317, 0.655, 0.028)),
        # SPEC lists (0.200, 0.523, 0.283) here, which sums to 1.006: its p2 is a typo. The equations
        # give p2 = 1 - 0.200 - 0.283 = 0.517.
        (100_000, (0.200, 0.517, 0.283)),
    ],
)
def test_progressive_matches_the_spec_reference_values(step, expected):
    assert progressive(step) == pytest.approx(expected, abs=5e-4)


def test_step_one_is_all_level_one():
    p1, p2, p3 = progressive(1)
    assert p2 == 0.0 and p1 == pytest.approx(1.0, abs=1e-5) and 0 < p3 < 1e-5
    assert progressive(0) == progressive(1)


def test_renormalised_past_about_297k():
    p1, p2, p3 = progressive(300_000)
    raw_p1, raw_p3 = 2 * 300_000**-0.2, 300_000 / 5000**1.5
    assert raw_p1 + raw_p3 > 1 and p2 == 0.0
    assert (p1, p3) == pytest.approx((raw_p1 / (raw_p1 + raw_p3), raw_p3 / (raw_p1 + raw_p3)))
    assert progressive(290_000)[1] > 0.0  # not yet renormalised


@pytest.mark.parametrize("step", [1, 7, 1000, 4_000, 10_000, 100_000, 296_000, 300_000, 10**7])
@pytest.mark.parametrize("schedule", ["progressive", "fixed", "level1", "level12"])
def test_probabilities_sum_to_one(schedule, step):
    probabilities = level_probabilities(schedule, step)
    assert sum(probabilities) == pytest.approx(1.0) and min(probabilities) >= 0.0


def test_progressive_moves_from_easy_to_hard():
    steps = [10, 100, 1_000, 10_000, 100_000, 250_000]
    p1s = [progressive(s)[0] for s in steps]
    p3s = [progressive(s)[2] for s in steps]
    assert p1s == sorted(p1s, reverse=True) and p3s == sorted(p3s)


def test_named_schedules():
    assert level_probabilities("fixed", 5) == (0.3, 0.4, 0.3)
    assert level_probabilities("level1", 5) == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="unknown negative schedule 'hard'"):
        level_probabilities("hard", 5)


def test_a_span_spreads_the_papers_curriculum_over_the_runs_matching_steps():
    from components.config import load_job_config
    from components.training.curriculum import curriculum_step
    from components.training.schedule import matching_steps_until, task_for_step

    assert [matching_steps_until(s) for s in range(1, 10)] == [0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert matching_steps_until(9, (1, 0)) == 0 and matching_steps_until(9, (0, 1)) == 9
    for step in range(1, 30):  # the count agrees with the task of every step
        assert matching_steps_until(step) == sum(task_for_step(s - 1) == "matching" for s in range(1, step + 1))
    train = load_job_config("tiny", ["train.steps=400", "train.curriculum_span=200000"]).train
    matching = [s for s in range(1, 401) if task_for_step(s - 1) == "matching"]  # 100 matching steps
    read = [curriculum_step(train, s) for s in matching]
    assert read[0] == 1 and read[-1] == 200_000  # easy first, the whole curriculum by the last one
    assert read == sorted(read) and len(set(read)) == 100
    assert progressive(read[0])[0] == pytest.approx(1.0, abs=1e-5)  # the first matching batch: Level I only
    scaled = load_job_config("tiny", ["train.steps=400", "train.curriculum_scale=500"]).train
    assert curriculum_step(scaled, matching[0]) == 2000  # the old way: the first matching step at 4 x 500


def test_a_level1_share_holds_the_first_matching_steps_at_level1_then_spreads_the_span():
    from components.config import load_job_config
    from components.errors import ConfigError
    from components.training.curriculum import curriculum_step
    from components.training.schedule import task_for_step

    overrides = ["train.steps=400", "train.curriculum_span=200000", "train.curriculum_level1_share=0.25"]
    train = load_job_config("tiny", overrides).train
    matching = [s for s in range(1, 401) if task_for_step(s - 1) == "matching"]  # 100 matching steps
    read = [curriculum_step(train, s) for s in matching]
    assert read[:25] == [1] * 25 and read[25] == 1 and read[26] > 1  # 25 held, then the span from its step 1
    assert read[-1] == 200_000 and read == sorted(read)
    assert [progressive(r)[0] for r in read[:26]] == pytest.approx([1.0] * 26, abs=1e-5)
    with pytest.raises(ConfigError, match="train.curriculum_level1_share"):
        load_job_config("tiny", ["train.curriculum_level1_share=0.25"])  # no span to stretch
