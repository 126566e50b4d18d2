"""Training pieces without Ray: collation, matching batches, steps, checkpoints, resume, validation."""

import dataclasses
import random

import numpy as np
import pytest
import torch
from PIL import Image

from components.config import JobConfig, load_job_config
from components.data.pipeline.stream import EncodeImages
from components.data.record.tokenizer import EOS, PAD, SOS
from components.data.release.table import ensure_table, head_rows, read_split
from components.data.transforms.encoding import EncodeSpec
from components.evaluation.oracle import dataset_field_sheet
from components.model import build_model
from components.model.batches import caption_tokens, collate
from components.model.checkpoint import load_checkpoint, save_checkpoint
from components.training.matching import matching_batch
from components.training.steps import StepRunner, prepare_for_training
from components.training.validation import validate

# -- collation ------------------------------------------------------------------------------------
SPEC = EncodeSpec(grid=2, neighbours="top1", max_boxes=32)


@pytest.fixture(scope="module")
def encoded(tiny_dataset):
    root, _, tokenizer = tiny_dataset
    index = read_split(str(root), "train", limit=6)
    batch = {"image_id": np.array([r["image_id"] for r in index]), "record": np.array([r["record"] for r in index])}
    return EncodeImages(f"{root}/images", tokenizer, SPEC)(batch), tokenizer, root


def test_collate_is_image_major(encoded):
    rows, _, _ = encoded
    batch, images = collate(rows)
    n = int(rows["n_boxes"].sum())
    assert batch.images.shape == (6, 3, 64, 64) and batch.info_ids.shape[0] == 6
    assert batch.boxes.shape == (n, 4) and batch.captions.shape == (n, 12) and batch.num_boxes == n
    assert batch.image_index.tolist() == sum(([i] * int(k) for i, k in enumerate(rows["n_boxes"])), [])
    # a box's neighbour boxes are the boxes its neighbour indices point at, in the same image
    first_of_second = int(rows["n_boxes"][0])
    nxt = rows["neighbours"][1, 0, 1]
    assert torch.equal(batch.neighbour_boxes[first_of_second, 1], torch.from_numpy(rows["boxes"][1, nxt]))
    assert not batch.neighbour_valid[first_of_second, 0]  # the first box has no previous one
    assert [len(img.captions) for img in images] == rows["n_boxes"].tolist()
    assert images[0].captions[0] == caption_tokens(rows["captions"][0, 0])


def test_matching_batch_labels_and_captions(encoded):
    rows, _, _ = encoded
    batch, images = collate(rows)
    matched, samples = matching_batch(batch, images, (0.3, 0.4, 0.3), random.Random(0), positive_rate=0.4)
    labels = matched.extras["labels"]
    assert labels.tolist() == [float(s.label) for s in samples]
    for row, sample, original in zip(matched.captions, samples, batch.captions, strict=True):
        assert caption_tokens(row.numpy()) == sample.caption and row[0] == SOS and EOS in row.tolist()
        assert (sample.label == 1) == (caption_tokens(original.numpy()) == sample.caption)


# -- steps, checkpoints, resume, validation --------------------------------------------------------
def tiny_job(**train):
    return load_job_config("tiny", [f"train.{k}={v}" for k, v in train.items()])


def fresh(job, tokenizer, seed=0):
    torch.manual_seed(seed)
    model = build_model(job.model.with_overrides(vocab_size=len(tokenizer)))
    return model, StepRunner(model, job.train, torch.device("cpu"))


def test_loss_falls_when_overfitting_one_batch(encoded):
    rows, tokenizer, _ = encoded
    job = tiny_job(lr=0.003, warmup_steps=30, generation_per_matching="[1, 0]")
    model, runner = fresh(job, tokenizer)
    batch, images = collate(rows)
    losses = [runner.train_step(s, batch, images)["loss_generation"] for s in range(1, 31)]
    assert losses[-1] < 0.6 * losses[0]


def test_resume_from_checkpoint_continues_identically(encoded, tmp_path):
    rows, tokenizer, _ = encoded
    job = tiny_job(warmup_steps=2)
    batch, images = collate(rows)
    model, runner = fresh(job, tokenizer)
    for step in range(1, 4):
        runner.train_step(step, batch, images)
    save_checkpoint(tmp_path, model.state_dict(), {"step": 3, "runner": runner.state_dict()}, job.as_dict(), tokenizer)
    continued = runner.train_step(4, batch, images)  # step 4 is a matching step: negatives use the rng
    assert "loss_matching" in continued

    loaded = load_checkpoint(tmp_path)
    model2, runner2 = fresh(job, tokenizer, seed=99)
    model2.load_state_dict(loaded.model_state)
    runner2.load_state_dict(loaded.training_state["runner"])
    resumed = runner2.train_step(loaded.step + 1, batch, images)
    assert loaded.step == 3 and loaded.tokenizer.word2int == tokenizer.word2int
    assert JobConfig.from_dict(loaded.job) == job.with_overrides(model={"backbone_norm": model.backbone.norm})
    assert resumed["loss_matching"] == pytest.approx(continued["loss_matching"], abs=1e-6)
    assert resumed["lr"] == continued["lr"]
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_validate_scores_generation_and_matching(encoded):
    rows, tokenizer, _ = encoded
    job = tiny_job()
    model, _ = fresh(job, tokenizer)
    metrics = validate(model, [rows], tokenizer, (0.3, 0.4, 0.3), 0.4, torch.device("cpu"))
    levels = {f"matching_accuracy_{view}" for view in ("positive", "level1", "level2", "level3")}
    assert set(metrics) == {"loss_generation", "CIDEr", "boxes", "matching_accuracy", *levels}
    # An untrained head answers the same for everything: right on all positives or on all negatives.
    assert {metrics["matching_accuracy_positive"], metrics["matching_accuracy_level1"]} == {0.0, 1.0}
    assert metrics["boxes"] == rows["n_boxes"].sum() and 0 <= metrics["matching_accuracy"] <= 1
    assert metrics["loss_generation"] == pytest.approx(np.log(len(tokenizer)), rel=0.2)  # untrained
    assert "matching_accuracy" not in validate(model, [rows], tokenizer, None, 0.4, torch.device("cpu"))


def test_validate_reports_field_accuracy_per_input_given_a_field_sheet(encoded):
    rows, tokenizer, root = encoded
    index = ensure_table(str(root))
    sheet = dataset_field_sheet(index, head_rows(index, "train"))  # the encoded rows are train images
    model, _ = fresh(tiny_job(), tokenizer)
    metrics = validate(model, [rows], tokenizer, None, 0.4, torch.device("cpu"), fields=sheet)
    fields = {k for k in metrics if k.startswith(("field_", "role_"))}
    assert {"field_accuracy_info", "field_accuracy_image", "role_accuracy_brand"} <= fields
    assert all(0 <= metrics[k] <= 1 for k in fields)
    assert metrics["role_accuracy_brand"] == 0.0  # an untrained model copies no brand
    without = validate(model, [rows], tokenizer, None, 0.4, torch.device("cpu"))
    assert not any(k.startswith("field_") for k in without)


def test_curriculum_scale_stretches_the_paper_schedule_over_a_short_run(encoded):
    from components.training.curriculum import progressive

    rows, tokenizer, _ = encoded
    job = tiny_job(curriculum_scale=1000.0)
    _, runner = fresh(job, tokenizer)
    assert runner.probabilities(100) == progressive(100_000)
    assert fresh(tiny_job(), tokenizer)[1].probabilities(100) == progressive(100)


@pytest.mark.parametrize(
    "model,mix,expected",
    [
        ({}, (3, 1), False),  # generation steps keep the matching head in the graph (zero weight)
        ({}, (1, 0), False),  # fine-tuning: the head is frozen, nothing else sits out
        ({}, (0, 1), False),  # matching only: the tied word table still embeds the text
        ({"neighbours": "none"}, (1, 0), False),
        ({"use_image": False, "use_locations": False}, (1, 0), True),  # spatial tables serve nothing
    ],
)
def test_ddp_looks_for_unused_parameters_only_when_a_step_leaves_some(encoded, model, mix, expected):
    """``prepare_for_training`` against what really happens in backward: every task of the mix, one
    step each, and whether some trainable parameter got no gradient in some step."""
    rows, tokenizer, _ = encoded
    job = load_job_config("tiny", [f"model.{k}={str(v).lower()}" for k, v in model.items()])
    train = job.train.with_overrides(generation_per_matching=mix)
    torch.manual_seed(0)
    net = build_model(job.model.with_overrides(vocab_size=len(tokenizer)))
    assert prepare_for_training(net, train) is expected
    trainable = [p for p in net.parameters() if p.requires_grad]
    reached: set[int] = set()
    for p in trainable:
        p.register_post_accumulate_grad_hook(lambda p: reached.add(id(p)))
    batch, images = collate(rows)
    runner = StepRunner(net, train, torch.device("cpu"))
    sat_out = False
    for step in (1, 4) if mix == (3, 1) else (1,):  # step 1 generates, step 4 matches
        reached.clear()
        runner.train_step(step, batch, images)
        sat_out |= len(reached) < len(trainable)
    assert sat_out is expected


def test_a_mixed_job_runs_under_ddp_without_searching_for_unused_parameters(encoded, tmp_path):
    """DDP (one gloo process) with ``find_unused_parameters=False`` raises at the step after one that
    left a parameter without a gradient; the matching head kept in generation steps' graph and the
    info pointer kept in matching steps' avoid it, and the optimiser still skips each where it sits
    out: the head moves on matching steps only, the pointer on generation steps only."""
    import torch.distributed as dist

    rows, tokenizer, _ = encoded
    job = tiny_job()
    torch.manual_seed(0)
    net = build_model(job.model.with_overrides(vocab_size=len(tokenizer), copy_from_info=True))
    find_unused = prepare_for_training(net, job.train)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=find_unused)
        runner = StepRunner(ddp, job.train, torch.device("cpu"))
        batch, images = collate(rows)
        head, pointer = net.match_head[0].weight, net.pointer.gate.weight
        for step in range(1, 6):  # generation, generation, generation, matching, generation
            before = head.detach().clone(), pointer.detach().clone()
            runner.train_step(step, batch, images)
            assert torch.equal(before[0], head) is (step != 4)
            assert torch.equal(before[1], pointer) is (step == 4)
    finally:
        dist.destroy_process_group()
    assert find_unused is False


def test_scores_read_the_raw_references_not_captions_rebuilt_from_token_ids(tiny_dataset):
    """A character outside the vocabulary came back from the token ids as ``<unk>``, five characters
    to the scorer; predictions equal to the raw references must score BLEU@4 = 100."""
    from components.data.transforms.encoding import empty_rows, encode_record
    from components.evaluation.scores import caption_scores
    from components.training.validation import scoring_pairs

    root, by_split, tokenizer = tiny_dataset
    record = by_split["val"][0]
    out_of_vocabulary = "龘" if tokenizer.mode == "char" else "zzyzx"
    assert out_of_vocabulary not in tokenizer.word2int
    captions = (f"{record.captions[0]}{out_of_vocabulary}", *record.captions[1:])
    record = dataclasses.replace(record, captions=captions)
    image = Image.open(root / "images" / f"{record.image_id}.png")
    row = encode_record(record, image, tokenizer, EncodeSpec(grid=2))
    rows = {k: np.stack([v, v]) if k != "image_id" else np.array([record.image_id, "twin"]) for k, v in row.items()}
    assert "<unk>" in tokenizer.decode(row["captions"][0])  # what the scores used to read

    predicted = [list(ids) for ids in collate(rows)[0].captions[:, 1:].tolist()]
    pairs = scoring_pairs(rows, predicted, tokenizer)
    assert [p[0] for p in pairs[:2]] == [f"{record.image_id}#0", f"{record.image_id}#1"]
    assert [p[2] for p in pairs] == list(captions) * 2
    references = {key: reference for key, _, reference in pairs}
    assert caption_scores(references, references, tokenizer.mode, meteor=False)["BLEU@4"] == pytest.approx(100.0)
    rebuilt = {key: prediction for key, prediction, _ in pairs}
    assert caption_scores(references, rebuilt, tokenizer.mode, meteor=False)["BLEU@4"] < 100.0
    assert list(empty_rows(EncodeSpec(grid=2))["references"]) == []


def test_a_non_finite_loss_stops_training_naming_the_step():
    from components.errors import TrainingDiverged
    from components.training.driver import diverged
    from components.training.steps import NonFiniteLoss, check_finite

    check_finite({"loss_generation": 2.5, "boxes": 10.0}, 7, 1e-3)  # finite: nothing happens
    with pytest.raises(
        NonFiniteLoss, match=r"loss_generation = nan at step 7: training stopped \(lower train.lr, now 0.001"
    ):
        check_finite({"loss_generation": float("nan"), "boxes": 10.0}, 7, 1e-3)
    with pytest.raises(NonFiniteLoss, match="loss_matching = inf at step 9"):
        check_finite({"loss_matching": float("inf")}, 9, 1e-3)
    try:
        check_finite({"loss_generation": float("nan")}, 7, 1e-3)
    except NonFiniteLoss as failure:

        class WorkerGroupError(Exception):  # what Ray Train raises on the driver: failures by rank
            worker_failures = {0: failure}

        typed = diverged(WorkerGroupError())
    assert isinstance(typed, TrainingDiverged) and str(typed).startswith("loss_generation = nan at step 7")
    assert diverged(RuntimeError("something else")) is None


# -- speed switches: the same learning, faster ----------------------------------------------------
def run_steps(job, tokenizer, rows, steps):
    """Losses of steps 1..steps (three generation steps, then matching, ...) from the same weights."""
    model, runner = fresh(job, tokenizer)
    prepare_for_training(model, job.train)
    batch, images = collate(rows)
    losses = [
        next(v for k, v in runner.train_step(s, batch, images).items() if k.startswith("loss_"))
        for s in range(1, steps + 1)
    ]
    return losses


def test_padded_boxes_change_no_loss_and_no_weight(encoded):
    from components.model.batches import pad_boxes, padded_box_count

    rows, tokenizer, _ = encoded
    batch, _ = collate(rows)
    padded = pad_boxes(batch, 16)
    assert padded_box_count(batch.num_boxes, 16) == padded.num_boxes and padded.num_boxes % 16 == 0
    assert padded.num_boxes > batch.num_boxes and (padded.captions[batch.num_boxes :] == PAD).all()
    assert pad_boxes(batch, 0) is batch
    plain = run_steps(tiny_job(), tokenizer, rows, steps=6)
    bucketed = run_steps(tiny_job(box_bucket=16), tokenizer, rows, steps=6)
    assert bucketed == pytest.approx(plain, rel=1e-5)  # each step's loss reads the weights the last left


def test_the_fast_path_learns_as_the_plain_path_on_cpu(encoded):
    """Fused Adam and a channels-last backbone, then torch.compile with box buckets (generation
    steps of a model without the image: the ResNet and a second graph would take a minute more to
    compile on two cores; the buckets' matching steps are checked above), each from the
    same weights as the plain path: the same losses within float noise. TF32 and pinned copies
    apply on GPUs only."""
    rows, tokenizer, _ = encoded
    plain = run_steps(tiny_job(), tokenizer, rows, steps=4)
    fused = run_steps(tiny_job(fused_adam="true", channels_last="true"), tokenizer, rows, steps=4)
    assert fused == pytest.approx(plain, rel=1e-4)
    imageless = ["model.use_image=false"]
    plain = run_steps(load_job_config("tiny", imageless), tokenizer, rows, steps=3)  # generation: one graph
    fast_job = load_job_config("tiny", [*imageless, "train.compile=true", "train.box_bucket=16"])
    assert run_steps(fast_job, tokenizer, rows, steps=3) == pytest.approx(plain, rel=1e-3)
    _, runner = fresh(fast_job, tokenizer)
    assert runner.forward is not runner.model  # the compiled module
    fused_runner = fresh(tiny_job(fused_adam="true"), tokenizer)[1]
    assert fused_runner.optimizer.defaults["fused"] is True
