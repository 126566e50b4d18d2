"""Decoding captions for every box of every image in a batch at once.

Greedy and beam search share one step function, which either feeds one token through the key/value
cache or (``use_cache=False``, for checking and benchmarking) re-runs the whole sequence. Captions stop
at ``<eos>``, hold at most ``max_tokens`` tokens, and never contain ``<pad>``, ``<sos>``, ``<unk>`` or
``<mask>``. Results are ``(N, max_tokens)`` token ids, ``<eos>`` included where generated, then ``<pad>``.
``forbidden`` token sequences (a banned term's tokens) are never completed: at each step the token that
would end one after its prefix is made impossible, so a search spends its beams on allowed captions.
"""

from __future__ import annotations

import torch

from components.data.record.tokenizer import EOS, PAD, SOS
from components.model.capon import CapOnImage, DecodeState, ModelBatch, suppress_never_generated

Forbidden = tuple[tuple[int, ...], ...]  # token sequences a caption may not contain


def forbid_completions(log_probs: torch.Tensor, sequences: torch.Tensor, forbidden: Forbidden) -> torch.Tensor:
    """``log_probs (N, V)`` of the next token after ``sequences (N, t)`` (``<sos>`` first), with every
    token that would complete a forbidden sequence made impossible (a one-token sequence: always)."""
    if not forbidden:
        return log_probs
    log_probs = log_probs.clone()
    generated = sequences[:, 1:]  # (N, t - 1): <sos> is no part of a term
    for sequence in forbidden:
        *prefix, last = sequence
        if not prefix:
            log_probs[:, last] = float("-inf")
        elif len(prefix) <= generated.shape[1]:
            tail = generated[:, generated.shape[1] - len(prefix) :]  # (N, len(prefix))
            hit = (tail == torch.tensor(prefix, device=tail.device)).all(dim=1)  # (N,)
            log_probs[hit, last] = float("-inf")
    return log_probs


class _Stepper:
    """Next-token log-probabilities for the boxes of ``batch``, cached or recomputed."""

    def __init__(self, model: CapOnImage, batch: ModelBatch, use_cache: bool, forbidden: Forbidden = ()):
        self.model, self.batch, self.use_cache, self.forbidden = model, batch, use_cache, forbidden
        self.state: DecodeState | None = model.start_decoding(batch) if use_cache else None

    def __call__(self, sequences: torch.Tensor) -> torch.Tensor:
        """``sequences (N, t)`` starting with ``<sos>``: log-probabilities of token t ``(N, V)``."""
        if self.use_cache:
            logits, self.state = self.model.decode_step(sequences[:, -1], self.state)
        else:
            batch = ModelBatch(**{**self.batch.__dict__, "captions": sequences})
            logits = self.model(batch, task="generation").logits[:, -1]
        log_probs = torch.log_softmax(suppress_never_generated(logits.float()), dim=-1)
        return forbid_completions(log_probs, sequences, self.forbidden)

    def reorder(self, index: torch.Tensor) -> None:
        self.batch = self.batch.select_boxes(index)
        if self.state is not None:
            self.state = self.state.reorder(index)


def _finish(sequences: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """Drop ``<sos>`` and pad to ``max_tokens`` columns."""
    out = sequences[:, 1:]
    return torch.nn.functional.pad(out, (0, max_tokens - out.shape[1]), value=PAD)


@torch.no_grad()
def greedy_decode(
    model: CapOnImage, batch: ModelBatch, max_tokens: int = 10, use_cache: bool = True, forbidden: Forbidden = ()
) -> torch.Tensor:
    n = batch.num_boxes
    device = batch.boxes.device
    sequences = torch.full((n, 1), SOS, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    step = _Stepper(model, batch, use_cache, forbidden)
    for _ in range(max_tokens):
        token = step(sequences).argmax(dim=-1)
        token = torch.where(finished, torch.full_like(token, PAD), token)
        sequences = torch.cat([sequences, token[:, None]], dim=1)
        finished |= token == EOS
        if bool(finished.all()):
            break
    return _finish(sequences, max_tokens)


@torch.no_grad()
def beam_decode(
    model: CapOnImage,
    batch: ModelBatch,
    beam_size: int = 3,
    max_tokens: int = 10,
    length_penalty: float = 0.0,
    use_cache: bool = True,
    forbidden: Forbidden = (),
) -> torch.Tensor:
    """Beam search per box; the best beam by summed log-probability / length ** ``length_penalty``."""
    sequences, _ = beam_candidates(model, batch, beam_size, max_tokens, length_penalty, use_cache, forbidden)
    return sequences[:, 0]


@torch.no_grad()
def beam_candidates(
    model: CapOnImage,
    batch: ModelBatch,
    beam_size: int = 3,
    max_tokens: int = 10,
    length_penalty: float = 0.0,
    use_cache: bool = True,
    forbidden: Forbidden = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every final beam of each box, best first: ``(N, beam_size, max_tokens)`` token ids (as
    ``decode`` returns them) and ``(N, beam_size)`` summed log-probabilities (``<eos>`` included), the
    beams ranked by log-probability / length ** ``length_penalty``. The N best captions a choice among
    candidates starts from; a beam that found fewer than ``beam_size`` distinct captions has -inf."""
    n, k = batch.num_boxes, beam_size
    device = batch.boxes.device
    beams = torch.arange(n, device=device).repeat_interleave(k)  # (N*k,): the box of each beam
    step = _Stepper(model, batch.select_boxes(beams), use_cache, forbidden)
    sequences = torch.full((n * k, 1), SOS, dtype=torch.long, device=device)
    finished = torch.zeros(n * k, dtype=torch.bool, device=device)
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    for _ in range(max_tokens):
        log_probs = step(sequences)  # (N*k, V)
        vocab = log_probs.shape[1]
        # A finished beam can only be extended by <pad>, at no cost, so its score is kept.
        log_probs[finished] = float("-inf")
        log_probs[finished, PAD] = 0.0
        candidates = (scores.view(-1, 1) + log_probs).view(n, k * vocab)  # (N, k*V)
        scores, flat = candidates.topk(k, dim=1)  # (N, k)
        origin = (torch.arange(n, device=device)[:, None] * k + flat // vocab).view(-1)  # (N*k,)
        token = (flat % vocab).view(-1)  # (N*k,)
        sequences = torch.cat([sequences[origin], token[:, None]], dim=1)
        finished = finished[origin] | (token == EOS)
        step.reorder(origin)
        if bool(finished.all()):
            break
    lengths = ((sequences[:, 1:] != PAD) & (sequences[:, 1:] != EOS)).sum(dim=1).clamp(min=1).view(n, k)
    ranked = (scores / lengths.float() ** length_penalty).argsort(dim=1, descending=True, stable=True)  # (N, k)
    chosen = (torch.arange(n, device=device)[:, None] * k + ranked).view(-1)  # (N*k,)
    return _finish(sequences[chosen], max_tokens).view(n, k, max_tokens), scores.gather(1, ranked)


def decode(
    model: CapOnImage,
    batch: ModelBatch,
    beam_size: int = 1,
    max_tokens: int = 10,
    use_cache: bool = True,
    forbidden: Forbidden = (),
) -> torch.Tensor:
    if beam_size <= 1:
        return greedy_decode(model, batch, max_tokens, use_cache, forbidden)
    return beam_decode(model, batch, beam_size, max_tokens, use_cache=use_cache, forbidden=forbidden)
