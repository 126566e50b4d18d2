"""The model's contract (SPEC 3): masks, heads, ablations, image-major batching, decoding."""

import logging

import pytest
import torch
import torchvision

from components.data.record.tokenizer import EOS, MASK, PAD, SOS, UNK
from components.errors import ConfigError
from components.model import (
    GridBackbone,
    ModelBatch,
    ModelConfig,
    beam_candidates,
    beam_decode,
    build_model,
    count_parameters,
    greedy_decode,
    load_preset,
)
from components.model.capon import attention_mask, suppress_never_generated

torch.set_grad_enabled(True)
VOCAB = 60


def make_batch(seed: int = 0, boxes_per_image=(3, 1, 4), info_len: int = 7, side: int = 64, slots: int = 2):
    g = torch.Generator().manual_seed(seed)
    n_images, n = len(boxes_per_image), sum(boxes_per_image)
    corners = torch.rand(n, 2, 2, generator=g).sort(dim=1).values  # (N, 2 corners, xy)
    boxes = torch.cat([corners[:, 0], corners[:, 1] + 0.01], dim=1).clamp(max=1.0)  # (N, 4) x1 y1 x2 y2
    info = torch.randint(5, VOCAB, (n_images, info_len), generator=g)
    info[1, 4:] = PAD  # a shorter info
    captions = torch.randint(5, VOCAB, (n, 12), generator=g)
    captions[:, 0] = SOS
    captions[:, 6] = EOS
    captions[:, 7:] = PAD
    return ModelBatch(
        images=torch.randn(n_images, 3, side, side, generator=g),
        info_ids=info,
        image_index=torch.repeat_interleave(torch.arange(n_images), torch.tensor(boxes_per_image)),
        boxes=boxes,
        neighbour_boxes=torch.rand(n, slots, 4, generator=g),
        neighbour_valid=torch.rand(n, slots, generator=g) > 0.3,
        captions=captions,
    )


def as_double(batch: ModelBatch) -> ModelBatch:
    return ModelBatch(
        **{
            **batch.__dict__,
            "images": batch.images.double(),
            "boxes": batch.boxes.double(),
            "neighbour_boxes": batch.neighbour_boxes.double(),
        }
    )


def tiny(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = load_preset("tiny", vocab_size=VOCAB, **overrides)
    return build_model(config).double().eval()


@pytest.fixture(scope="module")
def model():
    return tiny()


def test_attention_mask_prefix_lm_and_bidirectional():
    prefix_valid = torch.tensor([[True, False]])  # the second prefix token is padding
    caption_valid = torch.tensor([[True, True, False]])
    causal = attention_mask(prefix_valid, caption_valid, causal=True)[0, 0].int().tolist()
    assert causal == [
        [1, 0, 0, 0, 0],  # prefix sees the valid prefix only
        [1, 1, 0, 0, 0],  # a padding query sees the valid prefix and itself
        [1, 0, 1, 0, 0],  # caption 0 sees the prefix and itself
        [1, 0, 1, 1, 0],  # caption 1 sees caption 0 and itself
        [1, 0, 1, 1, 1],  # caption padding: itself only besides the past
    ]
    both = attention_mask(prefix_valid, caption_valid, causal=False)[0, 0].int().tolist()
    assert both[0] == [1, 0, 1, 1, 0] and both[4] == [1, 0, 1, 1, 1]


def test_changing_caption_token_t_leaves_earlier_outputs_and_prefix(model):
    batch = as_double(make_batch())
    t = 3
    changed = ModelBatch(**{**batch.__dict__, "captions": batch.captions.clone()})
    changed.captions[:, t] = (changed.captions[:, t] + 1 - 5) % (VOCAB - 5) + 5
    a, b = model(batch), model(changed)
    p = a.prefix_length
    torch.testing.assert_close(a.hidden[:, :p], b.hidden[:, :p], rtol=0, atol=0)
    torch.testing.assert_close(a.logits[:, :t], b.logits[:, :t], rtol=0, atol=0)
    assert (a.logits[:, t] - b.logits[:, t]).abs().max() > 1e-6  # position t itself sees token t


def test_matching_score_depends_on_caption_and_prefix(model):
    batch = as_double(make_batch())
    changed = ModelBatch(**{**batch.__dict__, "captions": batch.captions.roll(1, dims=0)})
    score = model(batch, task="matching").match_logits
    assert score.shape == (batch.num_boxes,)
    assert (score - model(changed, task="matching").match_logits).abs().min() > 1e-9
    with pytest.raises(ValueError, match="task must be"):
        model(batch, task="ranking")


def hand_count_paper(v=6263, d=1024, layers=6, k=8, ffn=2, positions=60, channels=2048) -> int:
    """Parameters of the paper preset from its shapes (the released code's FFN of 2048 at d 1024; with
    ImageNet weights BatchNorm is frozen: buffers, not parameters)."""
    resnet50 = 3 * 64 * 7 * 7
    in_channels = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        resnet50 += in_channels * width + 9 * width * width + width * 4 * width + in_channels * 4 * width
        resnet50 += (blocks - 1) * (4 * width * width + 9 * width * width + width * 4 * width)
        in_channels = 4 * width
    image = channels * d + d + k * d  # projection and the h/v tables (k x d/2 each)
    location = (4 * d * d // 2 + d // 2) + (2 * d * d // 2 + d // 2) + 2 * d  # W1, W2, "no neighbour"
    text = v * d + positions * d + 4 * d + 2 * d  # words (tied output), positions, segments, embedding norm
    layer = (3 * d * d + 3 * d) + (d * d + d) + 4 * d + (d * ffn * d + ffn * d) + (ffn * d * d + d)
    heads = 2 * d + (d * d + d) + (d + 1)  # final norm, matching pooler and score
    return resnet50 + image + location + text + layers * layer + heads


def test_paper_preset_parameter_count_matches_hand_count():
    model = build_model(load_preset("paper", backbone_norm="frozen_batchnorm"))  # as with ImageNet weights
    counted, by_hand = count_parameters(model), hand_count_paper()
    print(f"paper preset: {counted:,} parameters (hand count {by_hand:,})")
    assert counted == by_hand == 86_642_881
    assert count_parameters(model.blocks[0].mlp) == 2 * 1024 * 2048 + 2048 + 1024  # the released FFN width


def test_greedy_equals_argmax_of_teacher_forced_logits(model):
    batch = as_double(make_batch(seed=1))
    tokens = greedy_decode(model, batch, max_tokens=10)
    forced = torch.cat([torch.full((batch.num_boxes, 1), SOS), tokens], dim=1)  # fed its own output
    logits = model(ModelBatch(**{**batch.__dict__, "captions": forced})).logits[:, :-1]
    predicted = suppress_never_generated(logits).argmax(-1)
    alive = torch.ones_like(tokens, dtype=torch.bool)
    alive[:, 1:] = (tokens[:, :-1] != EOS).cumprod(dim=1).bool()  # positions up to and including <eos>
    assert alive.sum() > batch.num_boxes
    assert torch.equal(predicted[alive], tokens[alive])


@pytest.fixture(scope="module")
def copying():
    return tiny(copy_from_info=True)


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("copy_from_info", [False, True], ids=["generate", "copy"])
def test_cached_decoding_equals_uncached(model, copying, beam_size, copy_from_info):
    model = copying if copy_from_info else model
    batch = as_double(make_batch(seed=2))
    cached = beam_decode(model, batch, beam_size) if beam_size > 1 else greedy_decode(model, batch)
    uncached = (
        beam_decode(model, batch, beam_size, use_cache=False)
        if beam_size > 1
        else greedy_decode(model, batch, use_cache=False)
    )
    assert torch.equal(cached, uncached)


def test_beam_size_one_equals_greedy(model):
    batch = as_double(make_batch(seed=3))
    assert torch.equal(beam_decode(model, batch, beam_size=1), greedy_decode(model, batch))


def test_beam_search_finds_at_least_the_greedy_score(model):
    batch = as_double(make_batch(seed=4))

    def log_prob(tokens):
        forced = torch.cat([torch.full((batch.num_boxes, 1), SOS), tokens], dim=1)
        logits = suppress_never_generated(model(ModelBatch(**{**batch.__dict__, "captions": forced})).logits[:, :-1])
        per_token = torch.log_softmax(logits, -1).gather(2, tokens[..., None])[..., 0]
        return torch.where(tokens == PAD, 0.0, per_token).sum(1)

    greedy, beam = greedy_decode(model, batch), beam_decode(model, batch, beam_size=4)
    assert (log_prob(beam) >= log_prob(greedy) - 1e-9).all()


def contains(rows: torch.Tensor, sequence: tuple[int, ...]) -> bool:
    return any(tuple(row[i : i + len(sequence)]) == sequence for row in rows.tolist() for i in range(len(row)))


def test_forbidden_sequences_are_never_completed(model):
    """A forbidden term's last token is impossible right after its prefix (a one-token term: always),
    in greedy and beam search, cached or not; nothing else changes where no term is forbidden."""
    batch = as_double(make_batch(seed=6))
    free = greedy_decode(model, batch)
    single = int(free[:, 0].mode().values)  # the most common first token
    words = [tuple(r[:2]) for r in free.tolist() if EOS not in r[:2] and PAD not in r[:2]]
    pair = max(set(words), key=words.count)  # a two-token start the model produces
    assert contains(free, (single,)) and contains(free, pair)
    for forbidden in (((single,),), (pair,)):
        decoded = [
            greedy_decode(model, batch, forbidden=forbidden),
            greedy_decode(model, batch, use_cache=False, forbidden=forbidden),
            beam_decode(model, batch, 3, forbidden=forbidden),
            beam_candidates(model, batch, 3, forbidden=forbidden)[0].flatten(0, 1),
        ]
        assert not any(contains(tokens, forbidden[0]) for tokens in decoded)
        assert torch.equal(decoded[0], decoded[1])
    assert torch.equal(greedy_decode(model, batch, forbidden=()), free)
    if pair[0] != single:  # only the pair's second token after its first is forbidden, not either alone
        assert contains(greedy_decode(model, batch, forbidden=(pair,)), (pair[0],))


def test_beam_candidates_are_every_beam_best_first_with_their_log_probabilities(model):
    """The N best captions per box: the first is beam_decode's, each box's are distinct and ranked,
    and each score is the caption's teacher-forced log-probability (its <eos> included)."""
    batch = as_double(make_batch(seed=5))
    sequences, scores = beam_candidates(model, batch, beam_size=4)
    assert sequences.shape == (batch.num_boxes, 4, 10) and scores.shape == (batch.num_boxes, 4)
    assert torch.equal(sequences[:, 0], beam_decode(model, batch, beam_size=4))
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    for box in range(batch.num_boxes):
        assert len({tuple(c.tolist()) for c in sequences[box]}) == 4
    for rank in range(4):
        tokens = sequences[:, rank]
        forced = torch.cat([torch.full((batch.num_boxes, 1), SOS), tokens], dim=1)
        logits = suppress_never_generated(model(ModelBatch(**{**batch.__dict__, "captions": forced})).logits[:, :-1])
        per_token = torch.log_softmax(logits, -1).gather(2, tokens[..., None])[..., 0]
        assert torch.allclose(torch.where(tokens == PAD, 0.0, per_token).sum(1), scores[:, rank].double(), atol=1e-6)
    uncached = beam_candidates(model, batch, beam_size=4, use_cache=False)
    assert torch.equal(uncached[0], sequences) and torch.allclose(uncached[1], scores)


class _LovesSpecials(torch.nn.Module):
    """Wraps a model so that raw logits prefer the never-generated specials and <eos> at step 4."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, batch, task="generation"):
        out = self.inner(batch, task)
        out.logits = self._bias(out.logits, batch.captions.shape[1])
        return out

    def start_decoding(self, batch):
        return self.inner.start_decoding(batch)

    def decode_step(self, tokens, state):
        logits, state = self.inner.decode_step(tokens, state)
        return self._bias(logits[:, None], state.length)[:, 0], state

    @staticmethod
    def _bias(logits, length):
        logits = logits.clone()
        logits[..., [PAD, SOS, UNK, MASK]] += 1e4
        if length >= 4:
            logits[..., -1, EOS] += 2e4
        return logits


@pytest.mark.parametrize("use_cache", [True, False])
def test_decoding_never_emits_specials_and_stops_at_eos(model, use_cache):
    wrapped = _LovesSpecials(model)
    batch = as_double(make_batch(seed=5))
    for tokens in (
        greedy_decode(wrapped, batch, use_cache=use_cache),
        beam_decode(wrapped, batch, beam_size=3, use_cache=use_cache),
    ):
        assert tokens.shape == (batch.num_boxes, 10)
        assert not torch.isin(tokens[:, :4], torch.tensor([PAD, SOS, UNK, MASK])).any()
        assert (tokens[:, 3] == EOS).all() and (tokens[:, 4:] == PAD).all()


def test_the_pointer_mixes_a_distribution_and_copies_only_info_words(copying):
    batch = as_double(make_batch(seed=11))
    log_probs = copying(batch).logits  # (N, Lc, V)
    torch.testing.assert_close(log_probs.logsumexp(-1), torch.zeros(log_probs.shape[:2], dtype=torch.float64))
    with torch.no_grad():
        copying.pointer.gate.bias.fill_(-1e4)  # gate 0: copy only
        copied = copying(batch).logits.exp()
        copying.pointer.gate.bias.zero_()
    info = batch.info_ids[batch.image_index]  # (N, Li)
    in_info = torch.zeros(batch.num_boxes, VOCAB, dtype=torch.bool).scatter_(1, info, True)
    in_info[:, PAD] = False  # padding is never copied
    assert copied.sum(-1).allclose(torch.ones(1, dtype=torch.float64))
    assert copied.masked_fill(in_info[:, None], 0).max() < 1e-12  # no mass off the info's words
    assert copied.masked_fill(~in_info[:, None], 0).sum(-1).min() > 1 - 1e-9
    empty = ModelBatch(**{**batch.__dict__, "info_ids": torch.full_like(batch.info_ids, PAD)})
    assert torch.isfinite(copying(empty).logits).all()  # an empty info copies nothing, and no NaN


def test_copying_is_switched_off_without_info_and_on_in_the_config():
    assert tiny(copy_from_info=True, use_info=False).pointer is None  # the no-info ablation: nothing to copy
    assert tiny().pointer is None  # the paper's model by default
    assert set(tiny(copy_from_info=True).state_dict()) - set(tiny().state_dict()) == {
        f"pointer.{layer}.{p}" for layer in ("query", "key", "gate") for p in ("weight", "bias")
    }


def test_decoding_stops_after_max_tokens(model):
    tokens = greedy_decode(model, as_double(make_batch(seed=6)), max_tokens=4)
    assert tokens.shape[1] == 4


def perturb(batch: ModelBatch, field: str) -> ModelBatch:
    values = dict(batch.__dict__)
    if field == "images":
        values["images"] = torch.randn_like(batch.images)
    elif field == "info_ids":
        values["info_ids"] = torch.where(batch.info_ids == PAD, PAD, (batch.info_ids + 7 - 5) % (VOCAB - 5) + 5)
    elif field == "boxes":
        values["boxes"] = (1 - batch.boxes).flip(-1)
        values["neighbour_boxes"] = (1 - batch.neighbour_boxes).flip(-1)
    elif field == "neighbours":
        values["neighbour_boxes"] = (1 - batch.neighbour_boxes).flip(-1)
        values["neighbour_valid"] = torch.ones_like(batch.neighbour_valid)
    return ModelBatch(**values)


@pytest.mark.parametrize(
    "switch,field",
    [
        ({"use_image": False}, "images"),
        ({"use_info": False}, "info_ids"),
        ({"use_locations": False}, "boxes"),
        ({"neighbours": "none"}, "neighbours"),
    ],
    ids=["no-image", "no-info", "no-locations", "baseline-no-neighbours"],
)
def test_each_ablation_really_removes_its_input(switch, field):
    batch = as_double(make_batch(seed=7))
    full, ablated = tiny(), tiny(**switch)
    changed = perturb(batch, field)
    for task, out in (("generation", "logits"), ("matching", "match_logits")):
        # the full model uses the input (a positive control) ...
        assert (getattr(full(batch, task), out) - getattr(full(changed, task), out)).abs().max() > 1e-6
        # ... and the ablated one does not
        torch.testing.assert_close(
            getattr(ablated(batch, task), out), getattr(ablated(changed, task), out), rtol=0, atol=0
        )


def test_missing_neighbour_is_its_own_embedding_not_a_top_left_box(model):
    batch = as_double(make_batch(seed=8))
    missing = ModelBatch(**{**batch.__dict__, "neighbour_valid": torch.zeros_like(batch.neighbour_valid)})
    zeros = ModelBatch(**{**missing.__dict__, "neighbour_boxes": torch.zeros_like(batch.neighbour_boxes)})
    top_left = ModelBatch(**{**zeros.__dict__, "neighbour_valid": torch.ones_like(batch.neighbour_valid)})
    # what a missing neighbour's box holds does not matter ...
    torch.testing.assert_close(model(missing).logits, model(zeros).logits, rtol=0, atol=0)
    # ... and it differs from a real box at 0_0_0_0
    assert (model(zeros).logits - model(top_left).logits).abs().max() > 1e-6


@pytest.mark.parametrize("train_mode", [False, True])
def test_image_major_equals_one_image_per_box(train_mode):
    m = tiny()
    m.train(train_mode)  # dropout 0 in the tiny preset; frozen BatchNorm keeps images independent
    batch = as_double(make_batch(seed=9, boxes_per_image=(5, 4, 6)))
    per_box = batch.one_image_per_box()
    assert per_box.images.shape[0] == 15 and batch.images.shape[0] == 3
    for task, out in (("generation", "logits"), ("matching", "match_logits")):
        torch.testing.assert_close(getattr(m(batch, task), out), getattr(m(per_box, task), out), rtol=1e-10, atol=1e-10)


def test_gradients_reach_every_trainable_parameter():
    m = tiny(copy_from_info=True).train()
    batch = as_double(make_batch(seed=10))
    loss = m(batch).logits.sum() + m(batch, "matching").match_logits.sum()
    loss.backward()
    missing = [name for name, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_backbone_weights_from_path_and_uri(tmp_path, caplog):
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    for source in (str(tmp_path / "r18.pth"), f"file://{tmp_path / 'r18.pth'}"):
        backbone = GridBackbone("resnet18", grid=2, weights=source)
        assert torch.equal(backbone.trunk.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
        assert torch.equal(backbone.trunk.bn1.running_var, reference.bn1.running_var)
    with pytest.raises(ConfigError, match="does not fit this backbone"):
        GridBackbone("resnet50", grid=2, weights=str(tmp_path / "r18.pth"))
    with pytest.raises(ConfigError, match="no such file"):
        GridBackbone("resnet18", grid=2, weights=str(tmp_path / "absent.pth"))
    assert GridBackbone("resnet18", grid=2, weights=str(tmp_path / "r18.pth")).norm == "frozen_batchnorm"
    with pytest.raises(ConfigError, match="'model.backbone_norm': groupnorm cannot take the ImageNet weights"):
        GridBackbone("resnet18", grid=2, weights=str(tmp_path / "r18.pth"), norm="groupnorm")


@pytest.fixture
def no_imagenet_cache(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "empty-hub"))
    yield
    torch.hub.set_dir(previous)


def test_a_random_init_backbone_is_normalised(no_imagenet_cache, caplog):
    """Frozen BatchNorm holding its initial statistics is the identity: a random trunk gets GroupNorm,
    trained with it, and its normalisation layers really normalise."""
    backbone = GridBackbone("resnet18", grid=2)
    assert backbone.norm == "groupnorm" and backbone.weights_source == "random"
    norms = [m for m in backbone.trunk.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 20 and all(p.requires_grad for m in norms for p in m.parameters())
    shifted = 5.0 + 3.0 * torch.randn(2, 64, 8, 8)
    normalised = backbone.trunk.bn1(shifted).detach()
    assert not torch.allclose(normalised, shifted)
    assert abs(float(normalised.mean())) < 1e-3 and float(normalised.std()) == pytest.approx(1.0, abs=0.01)

    with caplog.at_level(logging.WARNING):
        frozen = GridBackbone("resnet18", grid=2, norm="frozen_batchnorm")  # asked for: the identity, and said so
    assert torch.allclose(frozen.trunk.bn1(shifted), shifted, rtol=1e-4) and "is the identity" in caplog.text


def test_checkpoints_name_the_backbone_norm_their_weights_have(no_imagenet_cache, tmp_path):
    from components.config import SKIP_WEIGHTS
    from components.data.record.tokenizer import Tokenizer
    from components.model.checkpoint import load_checkpoint, save_checkpoint

    config = load_preset("tiny", vocab_size=VOCAB)
    assert config.backbone_norm == "auto"
    model = build_model(config)
    tokenizer = Tokenizer.build(["a b c"] * 2, mode="word")
    save_checkpoint(tmp_path, model.state_dict(), {"step": 1}, {"model": config.as_dict()}, tokenizer)
    loaded = load_checkpoint(tmp_path)
    assert loaded.job["model"]["backbone_norm"] == "groupnorm"
    served = build_model(ModelConfig.from_dict({**loaded.job["model"], "backbone_weights": SKIP_WEIGHTS}))
    served.load_state_dict(loaded.model_state)  # strict: the same layers as trained
    from components.model.inference import Captioner

    captioner = Captioner(config, model.state_dict(), tokenizer)  # a bare state dict with an "auto" config
    assert captioner.model.backbone.norm == "groupnorm"


def test_frozen_backbone_has_no_trainable_parameters():
    m = build_model(load_preset("tiny", train_backbone=False))
    assert count_parameters(m.backbone, trainable_only=True) == 0
    assert count_parameters(m, trainable_only=True) > 0


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.n_heads"):
        ModelConfig(d_model=64, n_heads=5)
    with pytest.raises(ConfigError, match="'model.layers': unknown key"):
        ModelConfig.from_dict({"layers": 3})
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_preset("huge")
    assert load_preset("small").grid == 8 and load_preset("paper").d_model == 1024  # comparisons at the paper grid


def test_backbone_weights_from_torchvision_cache(tmp_path):
    reference = torchvision.models.resnet18()
    name = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / name)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        backbone = GridBackbone("resnet18", grid=2)
    finally:
        torch.hub.set_dir(previous)
    assert backbone.weights_source.endswith(name)
    assert torch.equal(backbone.trunk.conv1.weight, reference.conv1.weight)


def test_a_grown_word_table_keeps_every_trained_token_and_adds_mean_rows():
    """Fine-tuning on a grown vocabulary: the old tokens' embeddings and output logits stay as they
    were; each new token starts as the mean of the trained rows (specials left out)."""
    from components.model.checkpoint import WORD_TABLE, grow_word_table

    torch.manual_seed(0)
    state = {WORD_TABLE: torch.randn(12, 8), "other.weight": torch.randn(3, 3)}
    grown = grow_word_table(state, 15)
    table = grown[WORD_TABLE]
    assert table.shape == (15, 8) and torch.equal(table[:12], state[WORD_TABLE])
    assert torch.allclose(table[12:], state[WORD_TABLE][5:].mean(0).expand(3, 8))
    assert grown["other.weight"] is state["other.weight"]
    hidden = torch.randn(4, 8)
    assert torch.allclose((hidden @ table.T)[:, :12], hidden @ state[WORD_TABLE].T)  # tied output: old logits kept
    with pytest.raises(ValueError, match="cannot shrink"):
        grow_word_table(state, 11)
