"""The CapOnImage model (SPEC 3), top to bottom.

One transformer stack over ``[k*k image cells | 1 location | info | caption]``:

- caption generation (CG) is a prefix LM: prefix tokens see the whole (valid) prefix, caption tokens
  see the prefix and earlier caption tokens; the output projection is tied to the word embedding;
- caption matching (CM) attends bidirectionally over everything and scores the match from the
  hidden state of the caption's ``<sos>``;
- optionally (``copy_from_info``, not in the paper) a pointer over the info mixes copying into the
  generated distribution: a brand is copied from the info, not learnt as an output word.

Batches are image-major: ``images`` and ``info_ids`` have one row per image, every per-box tensor
has one row per box and ``image_index`` says whose image each box is. The backbone and the info
embedding run once per image and are gathered per box.

Ablations remove an input from the sequence entirely (no-image, no-info, no-locations), so outputs
cannot depend on it; ``neighbour_slots = 0`` is the paper's baseline location token.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from components.data.record.tokenizer import EOS, MASK, PAD, SOS, UNK

IMAGE, LOCATION, INFO, CAPTION = range(4)  # segment ids
NEVER_GENERATED = (PAD, SOS, UNK, MASK)


@dataclass
class ModelBatch:
    """Model inputs for ``B`` images holding ``N`` boxes in all."""

    images: torch.Tensor  # (B, 3, 32k, 32k) float, masked and normalised
    info_ids: torch.Tensor  # (B, Li) long, PAD-padded
    image_index: torch.Tensor  # (N,) long: the image of each box
    boxes: torch.Tensor  # (N, 4) float fractions x1 y1 x2 y2
    neighbour_boxes: torch.Tensor  # (N, S, 4) float
    neighbour_valid: torch.Tensor  # (N, S) bool: False where there is no neighbour
    captions: torch.Tensor | None = None  # (N, Lc) long: <sos> tokens <eos> PAD...
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. matching labels

    @property
    def num_boxes(self) -> int:
        return self.boxes.shape[0]

    def map_tensors(self, fn) -> ModelBatch:
        """The batch with ``fn`` applied to every tensor (``captions`` may be None)."""
        apply = lambda t: None if t is None else fn(t)  # noqa: E731
        return ModelBatch(
            images=apply(self.images),
            info_ids=apply(self.info_ids),
            image_index=apply(self.image_index),
            boxes=apply(self.boxes),
            neighbour_boxes=apply(self.neighbour_boxes),
            neighbour_valid=apply(self.neighbour_valid),
            captions=apply(self.captions),
            extras={k: apply(v) for k, v in self.extras.items()},
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ModelBatch:
        return self.map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> ModelBatch:
        """The batch in page-locked memory, so that ``to(cuda, non_blocking=True)`` overlaps the copy."""
        return self.map_tensors(torch.Tensor.pin_memory)

    def select_boxes(self, index: torch.Tensor) -> ModelBatch:
        """The same images with the boxes ``index`` (repeats allowed, e.g. for beams)."""
        return replace(
            self,
            image_index=self.image_index[index],
            boxes=self.boxes[index],
            neighbour_boxes=self.neighbour_boxes[index],
            neighbour_valid=self.neighbour_valid[index],
            captions=None if self.captions is None else self.captions[index],
            extras={k: v[index] for k, v in self.extras.items()},
        )

    @property
    def box_info_ids(self) -> torch.Tensor:
        return self.info_ids[self.image_index]  # (N, Li): each box's info

    def one_image_per_box(self) -> ModelBatch:
        """The released code's layout: every box carries its own copy of its image and info."""
        return replace(
            self,
            images=self.images[self.image_index],
            info_ids=self.box_info_ids,
            image_index=torch.arange(self.num_boxes, device=self.image_index.device),
        )


def grid_indices(coords: torch.Tensor, grid: int) -> torch.Tensor:
    """Fractions to grid cells, ``min(k-1, round(coord*k))`` rounding half up (as components.data.record.boxes)."""
    return torch.floor(coords * grid + 0.5).clamp(0, grid - 1).long()


class SpatialTables(nn.Module):
    """``Emb_h`` (columns) and ``Emb_v`` (rows), d/2 each, shared by image cells and text boxes."""

    def __init__(self, grid: int, d_model: int):
        super().__init__()
        self.grid = grid
        self.horizontal = nn.Embedding(grid, d_model // 2)
        self.vertical = nn.Embedding(grid, d_model // 2)

    def cells(self) -> torch.Tensor:
        """``[Emb_h(x); Emb_v(y)]`` of every cell in row-major order: ``(k*k, d)``."""
        index = torch.arange(self.grid * self.grid, device=self.horizontal.weight.device)
        return torch.cat([self.horizontal(index % self.grid), self.vertical(index // self.grid)], dim=-1)

    def boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """``e(box) = [Emb_h(x1); Emb_v(y1); Emb_h(x2); Emb_v(y2)]``: ``(..., 4)`` to ``(..., 2d)``."""
        cell = grid_indices(boxes, self.grid)
        return torch.cat(
            [
                self.horizontal(cell[..., 0]),
                self.vertical(cell[..., 1]),
                self.horizontal(cell[..., 2]),
                self.vertical(cell[..., 3]),
            ],
            dim=-1,
        )


class LocationToken(nn.Module):
    """``[W1 . [e_prev; e_next]; W2 . e_cur]`` (d/2 each); with no neighbour slots, ``W2 . e_cur`` is all of d.

    A missing neighbour is a learned vector, not a box: the released code's ``0_0_0_0`` collided
    with a real box in the top-left cell.
    """

    def __init__(self, d_model: int, neighbour_slots: int):
        super().__init__()
        self.neighbour_slots = neighbour_slots
        if neighbour_slots:
            self.no_neighbour = nn.Parameter(torch.randn(2 * d_model) * 0.02)
            self.neighbours = nn.Linear(2 * d_model * neighbour_slots, d_model // 2)  # W1
            self.current = nn.Linear(2 * d_model, d_model // 2)  # W2
        else:
            self.current = nn.Linear(2 * d_model, d_model)

    def forward(self, e_current: torch.Tensor, e_neighbours: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not self.neighbour_slots:
            return self.current(e_current)  # (N, d)
        e_neighbours = torch.where(valid[..., None], e_neighbours, self.no_neighbour)  # (N, S, 2d)
        return torch.cat([self.neighbours(e_neighbours.flatten(1)), self.current(e_current)], dim=-1)  # (N, d)


class TextEmbedding(nn.Module):
    """Word plus position embedding; the word table is shared by info and captions and tied to the output."""

    def __init__(self, vocab_size: int, d_model: int, max_positions: int):
        super().__init__()
        self.words = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_positions, d_model)

    def forward(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        return self.words(ids) + self.positions(positions)  # (N, T, d)


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, past: tuple | None = None):
        """``x (N, T, d)``; ``mask (N, 1, T, S)`` True where a query may attend; ``past`` cached keys/values."""
        n, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(n, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))  # (N, H, T, dh)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (N, H, S, dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(n, t, d)  # (N, T, d)
        return self.out(y), (k, v)


class Block(nn.Module):
    """Pre-norm transformer layer."""

    def __init__(self, d_model: int, n_heads: int, ffn_mult: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ffn_mult * d_model), nn.GELU(), nn.Linear(ffn_mult * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, past: tuple | None = None):
        attended, present = self.attention(self.norm1(x), mask, past)
        x = x + self.drop(attended)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, present


class InfoPointer(nn.Module):
    """Copying from the info: ``p(w) = g . softmax(logits)(w) + (1 - g) . sum_{j: info_j = w} a_j``.

    ``a`` attends from each caption state over the info's final states, ``g`` is a learned gate. The
    result is returned as log-probabilities, which every consumer of logits (cross-entropy,
    ``log_softmax``, argmax) reads unchanged. Computed in float32 at least: the mixture's small
    probabilities do not survive bf16.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.gate = nn.Linear(d_model, 1)

    def forward(
        self, hidden: torch.Tensor, logits: torch.Tensor, info_hidden: torch.Tensor, info_ids: torch.Tensor
    ) -> torch.Tensor:
        """``hidden (N, T, d)``, ``logits (N, T, V)``, ``info_hidden (N, Li, d)``, ``info_ids (N, Li)``."""
        wide = torch.float64 if logits.dtype == torch.float64 else torch.float32
        info_valid = info_ids != PAD  # (N, Li)
        scores = self.query(hidden) @ self.key(info_hidden).transpose(1, 2)  # (N, T, Li)
        scores = (scores.to(wide) / hidden.shape[-1] ** 0.5).masked_fill(~info_valid[:, None], float("-inf"))
        has_info = info_valid.any(dim=1)[:, None, None]  # (N, 1, 1): an empty info copies nothing
        attention = torch.where(has_info, scores, 0.0).softmax(dim=-1)  # (N, T, Li)
        copied = torch.zeros_like(logits, dtype=wide).scatter_add_(
            2, info_ids[:, None].expand(-1, hidden.shape[1], -1), attention
        )  # (N, T, V): attention summed per info word
        gate = torch.where(has_info, torch.sigmoid(self.gate(hidden).to(wide)), 1.0)  # (N, T, 1): 1 copies nothing
        mixed = gate * logits.to(wide).softmax(dim=-1) + (1 - gate) * copied
        return mixed.clamp_min(torch.finfo(wide).tiny).log()  # (N, T, V)


def attention_mask(prefix_valid: torch.Tensor, caption_valid: torch.Tensor, causal: bool) -> torch.Tensor:
    """``(N, 1, T, T)`` boolean mask over ``[prefix | caption]``, True where a query may attend a key.

    ``causal`` (generation): prefix queries see the valid prefix only; caption queries also see
    earlier and current caption tokens. Otherwise (matching) every query sees every valid key. Each
    token also sees itself, so that a padding query never has an empty row (which would give NaN).
    """
    n, p = prefix_valid.shape
    t = p + caption_valid.shape[1]
    key_valid = torch.cat([prefix_valid, caption_valid], dim=1)  # (N, T)
    position = torch.arange(t, device=key_valid.device)
    if causal:
        in_caption = position >= p
        sees = ~in_caption[None, :] | (in_caption[:, None] & (position[None, :] <= position[:, None]))  # (T, T)
        allowed = sees[None] & key_valid[:, None, :]  # (N, T, T)
    else:
        allowed = key_valid[:, None, :].expand(n, t, t)
    allowed = allowed | torch.eye(t, dtype=torch.bool, device=key_valid.device)[None]
    return allowed[:, None]  # (N, 1, T, T)


@dataclass
class ModelOutput:
    hidden: torch.Tensor  # (N, P + Lc, d) after the final norm
    prefix_length: int
    logits: torch.Tensor | None = None  # generation: (N, Lc, V); position t predicts token t + 1
    match_logits: torch.Tensor | None = None  # matching: (N,)


@dataclass
class DecodeState:
    """Cached keys and values of every layer, for incremental decoding."""

    pasts: list[tuple[torch.Tensor, torch.Tensor]]
    key_valid: torch.Tensor  # (N, S)
    length: int = 0  # caption tokens fed so far
    info_hidden: torch.Tensor | None = None  # (N, Li, d) final info states, for the pointer
    info_ids: torch.Tensor | None = None  # (N, Li)

    def reorder(self, index: torch.Tensor) -> DecodeState:
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        pasts = [(k[index], v[index]) for k, v in self.pasts]
        return DecodeState(pasts, self.key_valid[index], self.length, pick(self.info_hidden), pick(self.info_ids))


class CapOnImage(nn.Module):
    def __init__(
        self,
        *,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        ffn_mult: int = 4,
        grid: int = 8,
        backbone: nn.Module | None = None,
        backbone_channels: int = 2048,
        dropout: float = 0.1,
        max_positions: int = 64,
        neighbour_slots: int = 2,
        use_image: bool = True,
        use_info: bool = True,
        use_locations: bool = True,
        copy_from_info: bool = False,
    ):
        super().__init__()
        if use_image and backbone is None:
            raise ValueError("use_image needs a backbone")
        self.use_image, self.use_info, self.use_locations = use_image, use_info, use_locations
        self.grid = grid
        self.backbone = backbone if use_image else None
        self.tables = SpatialTables(grid, d_model)
        self.image_projection = nn.Linear(backbone_channels, d_model) if use_image else None
        self.location = LocationToken(d_model, neighbour_slots) if use_locations else None
        self.text = TextEmbedding(vocab_size, d_model, max_positions)
        self.segments = nn.Embedding(4, d_model)
        self.embedding_norm = nn.LayerNorm(d_model)
        self.embedding_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, ffn_mult, dropout) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.match_head = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, 1))
        self.pointer = InfoPointer(d_model) if copy_from_info and use_info else None  # no info, nothing to copy
        self._init_weights()

    def _init_weights(self) -> None:
        for name, module in self.named_modules():
            if name.startswith("backbone"):
                continue
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)

    # -- the sequence ------------------------------------------------------------------------------
    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding_drop(self.embedding_norm(x))

    def embed_prefix(self, batch: ModelBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``[image | location | info]`` per box: ``(N, P, d)`` and its validity ``(N, P)``."""
        n, index = batch.num_boxes, batch.image_index
        parts, valid = [], []
        ones = lambda width: torch.ones(n, width, dtype=torch.bool, device=index.device)  # noqa: E731
        if self.use_image:
            cells = self.backbone(batch.images)  # (B, k*k, C): once per image
            image = self.image_projection(cells) + self.tables.cells() + self.segments.weight[IMAGE]  # (B, k*k, d)
            parts.append(image[index])  # (N, k*k, d)
            valid.append(ones(image.shape[1]))
        if self.use_locations:
            e_current = self.tables.boxes(batch.boxes)  # (N, 2d)
            e_neighbours = self.tables.boxes(batch.neighbour_boxes)  # (N, S, 2d)
            location = self.location(e_current, e_neighbours, batch.neighbour_valid) + self.segments.weight[LOCATION]
            parts.append(location[:, None])  # (N, 1, d)
            valid.append(ones(1))
        if self.use_info:
            info = self.text(batch.info_ids) + self.segments.weight[INFO]  # (B, Li, d): once per image
            parts.append(info[index])  # (N, Li, d)
            valid.append((batch.info_ids != PAD)[index])
        if not parts:
            d = self.segments.weight.shape[1]
            return batch.boxes.new_zeros(n, 0, d), ones(0)
        return self._embed(torch.cat(parts, dim=1)), torch.cat(valid, dim=1)

    def embed_caption(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self._embed(self.text(tokens, start) + self.segments.weight[CAPTION])  # (N, T, d)

    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.text.words.weight.T  # tied output projection: (..., V)

    # -- training forward --------------------------------------------------------------------------
    def forward(self, batch: ModelBatch, task: str = "generation") -> ModelOutput:
        """``task`` is ``generation`` (prefix LM, next-token logits) or ``matching`` (bidirectional, score)."""
        if task not in ("generation", "matching"):
            raise ValueError(f"task must be 'generation' or 'matching', got '{task}'")
        prefix, prefix_valid = self.embed_prefix(batch)
        x = torch.cat([prefix, self.embed_caption(batch.captions)], dim=1)  # (N, P + Lc, d)
        mask = attention_mask(prefix_valid, batch.captions != PAD, causal=task == "generation")
        for block in self.blocks:
            x, _ = block(x, mask)
        x = self.final_norm(x)
        p = prefix.shape[1]
        if task == "generation":
            logits = self.token_logits(x[:, p:])  # (N, Lc, V)
            if self.pointer is not None:
                info_ids = batch.box_info_ids  # the info ends the prefix
                logits = self.pointer(x[:, p:], logits, x[:, p - info_ids.shape[1] : p], info_ids)
            return ModelOutput(x, p, logits=logits)
        return ModelOutput(x, p, match_logits=self.match_head(x[:, p]).squeeze(-1))  # the <sos> state

    # -- incremental decoding ----------------------------------------------------------------------
    def start_decoding(self, batch: ModelBatch) -> DecodeState:
        """Run the prefix once and keep every layer's keys and values."""
        prefix, prefix_valid = self.embed_prefix(batch)
        mask = attention_mask(prefix_valid, prefix_valid[:, :0], causal=True)  # (N, 1, P, P)
        x, pasts = prefix, []
        for block in self.blocks:
            x, present = block(x, mask)
            pasts.append(present)
        if self.pointer is None:
            return DecodeState(pasts, prefix_valid)
        info_ids = batch.box_info_ids  # the info ends the prefix
        info_hidden = self.final_norm(x[:, x.shape[1] - info_ids.shape[1] :])  # (N, Li, d)
        return DecodeState(pasts, prefix_valid, info_hidden=info_hidden, info_ids=info_ids)

    def decode_step(self, tokens: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        """Feed one caption token per box ``(N,)``; next-token logits ``(N, V)`` and the grown state."""
        x = self.embed_caption(tokens[:, None], start=state.length)  # (N, 1, d)
        key_valid = torch.cat([state.key_valid, torch.ones_like(state.key_valid[:, :1])], dim=1)  # (N, S + 1)
        mask = key_valid[:, None, None, :]  # (N, 1, 1, S + 1)
        pasts = []
        for block, past in zip(self.blocks, state.pasts, strict=True):
            x, present = block(x, mask, past)
            pasts.append(present)
        hidden = self.final_norm(x)  # (N, 1, d)
        logits = self.token_logits(hidden)
        if self.pointer is not None:
            logits = self.pointer(hidden, logits, state.info_hidden, state.info_ids)
        return logits[:, 0], DecodeState(pasts, key_valid, state.length + 1, state.info_hidden, state.info_ids)


def suppress_never_generated(logits: torch.Tensor) -> torch.Tensor:
    """Logits with ``<pad>``, ``<sos>``, ``<unk>`` and ``<mask>`` made impossible."""
    logits = logits.clone()
    logits[..., list(NEVER_GENERATED)] = float("-inf")
    return logits


__all__ = [
    "EOS",
    "SOS",
    "PAD",
    "CapOnImage",
    "DecodeState",
    "InfoPointer",
    "ModelBatch",
    "ModelOutput",
    "attention_mask",
    "grid_indices",
    "suppress_never_generated",
]
