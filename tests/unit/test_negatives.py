import random
from collections import Counter

import pytest

from components.data.transforms.neighbours import NO_NEIGHBOUR
from components.model.batches import ImageCaptions
from components.training.negatives import matching_samples, negative_for
from components.training.schedule import task_for_step, warmup_inverse_sqrt


def chain(n: int) -> tuple[tuple[int, int], ...]:
    return tuple((i - 1 if i > 0 else NO_NEIGHBOUR, i + 1 if i < n - 1 else NO_NEIGHBOUR) for i in range(n))


def image(tag: str, n: int) -> ImageCaptions:
    """Captions that say where they come from: image ``tag``, box ``i``."""
    return ImageCaptions(tuple(f"{tag}{i}" for i in range(n)), chain(n))


BATCH = [image("a", 5), image("b", 4), image("c", 1)]


@pytest.mark.parametrize("level", [1, 2, 3])
def test_each_level_has_its_documented_relation(level):
    rng = random.Random(level)
    probabilities = tuple(1.0 if i == level - 1 else 0.0 for i in range(3))
    samples = matching_samples(BATCH[:2], probabilities, rng, positive_rate=0.0)
    boxes = [(img, i) for img in BATCH[:2] for i in range(len(img.captions))]
    for (img, box), sample in zip(boxes, samples, strict=True):
        assert sample.label == 0 and sample.caption != img.captions[box]
        if level == 1:
            assert sample.caption not in img.captions  # another image's
        elif level == 2:
            assert sample.caption in img.captions  # another box of the same image
        else:
            neighbours = [img.captions[j] for j in img.neighbours[box] if j != NO_NEIGHBOUR]
            assert sample.caption in neighbours  # a chain neighbour's
        assert sample.level == level == sample.requested_level


def test_positive_share_and_level_mix():
    rng = random.Random(0)
    batch = [image(f"i{k}-", 6) for k in range(8)]
    samples = [s for _ in range(300) for s in matching_samples(batch, (0.2, 0.5, 0.3), rng)]
    positives = sum(s.label for s in samples) / len(samples)
    assert positives == pytest.approx(0.4, abs=0.02)
    levels = Counter(s.level for s in samples if s.label == 0)
    total = sum(levels.values())
    assert [levels[k] / total for k in (1, 2, 3)] == pytest.approx([0.2, 0.5, 0.3], abs=0.02)


def test_positive_keeps_the_true_caption():
    samples = matching_samples(BATCH, (1 / 3, 1 / 3, 1 / 3), random.Random(1), positive_rate=1.0)
    assert [s.caption for s in samples] == [c for img in BATCH for c in img.captions]
    assert all(s.label == 1 and s.level == 0 for s in samples)


def test_impossible_levels_fall_back_to_easier_ones():
    single = ImageCaptions(("only",), ((NO_NEIGHBOUR, NO_NEIGHBOUR),))
    caption, level = negative_for(3, single, 0, ["other"], random.Random(0))
    assert (caption, level) == ("other", 1)  # no neighbour, no other box: Level I
    end = image("e", 3)
    # neighbours equal to the truth do not count: box 0's only neighbour repeats its caption
    twins = ImageCaptions(("same", "same", "x"), chain(3))
    caption, level = negative_for(3, twins, 0, [], random.Random(0))
    assert (caption, level) == ("x", 2)
    assert negative_for(3, end, 0, [], random.Random(0))[1] == 3


def test_never_a_silent_positive():
    alone = [ImageCaptions(("same", "same"), chain(2))]  # nothing anywhere differs from the truth
    assert negative_for(3, alone[0], 0, [], random.Random(0)) is None
    samples = matching_samples(alone, (0.0, 0.0, 1.0), random.Random(0), positive_rate=0.0)
    assert all(s.label == 1 and s.caption == "same" for s in samples)  # honest positives
    # every box of BATCH has some negative (the lone box of image c through Level I): no positives
    samples = matching_samples(BATCH, (0.0, 0.0, 1.0), random.Random(5), positive_rate=0.0)
    assert all(s.label == 0 for s in samples)
    assert samples[-1].requested_level == 3 and samples[-1].level == 1


def test_extra_pool_serves_single_image_batches():
    lone = [ImageCaptions(("mine",), ((NO_NEIGHBOUR, NO_NEIGHBOUR),))]
    (sample,) = matching_samples(lone, (1.0, 0.0, 0.0), random.Random(0), positive_rate=0.0, extra_pool=["theirs"])
    assert (sample.caption, sample.label, sample.level) == ("theirs", 0, 1)


def test_three_to_one_mix():
    tasks = [task_for_step(s) for s in range(400)]
    assert tasks[:8] == ["generation"] * 3 + ["matching"] + ["generation"] * 3 + ["matching"]
    assert Counter(tasks) == {"generation": 300, "matching": 100}
    assert {task_for_step(s, (1, 0)) for s in range(10)} == {"generation"}


def test_learning_rate_warms_up_then_decays_as_inverse_sqrt():
    warmup = 4000
    assert warmup_inverse_sqrt(1, warmup) == pytest.approx(1 / 4000)
    assert warmup_inverse_sqrt(2000, warmup) == pytest.approx(0.5)
    assert warmup_inverse_sqrt(4000, warmup) == 1.0
    assert warmup_inverse_sqrt(16000, warmup) == pytest.approx(0.5)
    values = [warmup_inverse_sqrt(s, warmup) for s in range(1, 40_000, 500)]
    peak = values.index(max(values))
    assert values[: peak + 1] == sorted(values[: peak + 1]) and values[peak:] == sorted(values[peak:], reverse=True)
