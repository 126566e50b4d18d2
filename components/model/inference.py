"""A trained model loaded for inference: encoded image rows in, one caption per box out.

Shared by batch evaluation (a Ray Data actor), the MLflow pyfunc model and
``flows/caption.py``, so that every path loads and decodes the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import SKIP_WEIGHTS, ModelConfig
from components.data.record.tokenizer import Tokenizer
from components.data.transforms.encoding import EncodeSpec
from components.model.batches import collate
from components.model.build import build_model
from components.model.checkpoint import backbone_norm_of, load_checkpoint
from components.model.decoding import Forbidden, beam_candidates, decode


class Captioner:
    def __init__(self, model_config: ModelConfig, state: dict[str, torch.Tensor], tokenizer: Tokenizer, device=None):
        self.config = model_config
        self.tokenizer = tokenizer
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # The trained weights follow, and they say which normalisation the backbone was trained with.
        norm = backbone_norm_of(state) or model_config.backbone_norm
        self.model = build_model(model_config.with_overrides(backbone_weights=SKIP_WEIGHTS, backbone_norm=norm))
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, folder: str | Path, device=None) -> Captioner:
        """From a checkpoint folder (``torch.load(weights_only=True)``: a checkpoint cannot run code)."""
        checkpoint = load_checkpoint(folder, with_training_state=False)
        return cls(ModelConfig.from_dict(checkpoint.job["model"]), checkpoint.model_state, checkpoint.tokenizer, device)

    @property
    def spec(self) -> EncodeSpec:
        """How images and boxes must be encoded for this model."""
        return EncodeSpec.for_model(self.config)

    @torch.no_grad()
    def caption(
        self, rows: dict[str, np.ndarray], beam_size: int = 1, forbidden: Forbidden = ()
    ) -> tuple[Any, list[list[str]]]:
        """The model batch and, per image, its boxes' captions in the rows' box order (none completing a
        ``forbidden`` token sequence)."""
        batch, _ = collate(rows)
        limit = self.config.max_caption_tokens
        tokens = decode(self.model, batch.to(self.device), beam_size, limit, forbidden=forbidden).cpu().tolist()
        per_image: list[list[str]] = [[] for _ in range(len(rows["n_boxes"]))]
        for owner, generated in zip(batch.image_index.tolist(), tokens, strict=True):
            per_image[owner].append(self.tokenizer.decode(generated))
        return batch, per_image

    @torch.no_grad()
    def candidates(
        self, rows: dict[str, np.ndarray], count: int = 3, forbidden: Forbidden = ()
    ) -> list[list[list[tuple[str, float]]]]:
        """Per image, per box (in the rows' box order), up to ``count`` distinct captions from beam
        search of width ``count``, best first, each with its summed log-probability: what a choice among
        candidates (``components.publishing``) starts from. The first is ``caption(rows, count)``'s."""
        batch, _ = collate(rows)
        limit = self.config.max_caption_tokens
        sequences, scores = beam_candidates(self.model, batch.to(self.device), count, limit, forbidden=forbidden)
        per_image: list[list[list[tuple[str, float]]]] = [[] for _ in range(len(rows["n_boxes"]))]
        for owner, beams, beam_scores in zip(batch.image_index.tolist(), sequences.cpu().tolist(),
                                             scores.cpu().tolist(), strict=True):  # fmt: skip
            seen: dict[str, float] = {}
            for tokens, score in zip(beams, beam_scores, strict=True):
                text = self.tokenizer.decode(tokens)
                if score != float("-inf") and text not in seen:  # -inf: fewer distinct beams than asked
                    seen[text] = score
            per_image[owner].append(list(seen.items()))
        return per_image
