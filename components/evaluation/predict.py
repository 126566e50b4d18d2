"""Batch captioning of a dataset split with Ray Data: one row per box out, predictions beside references."""

from __future__ import annotations

from typing import Any

import numpy as np

from components.data.pipeline import EncodeSpec, build_dataset
from components.data.tokenizer import Tokenizer
from components.model.config import ModelConfig


class CaptionPredictor:
    """``map_batches`` callable for an actor pool: encoded image rows in, one row per box out."""

    def __init__(self, model_config: dict[str, Any], weights, word2int: dict[str, int], mode: str, beam_size: int = 1):
        import ray
        import torch

        from components.model import build_model

        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = build_model(ModelConfig.from_dict(model_config))
        state = ray.get(weights) if isinstance(weights, ray.ObjectRef) else weights
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()
        self.tokenizer = Tokenizer(word2int, mode)
        self.beam_size = beam_size
        self.max_tokens = ModelConfig.from_dict(model_config).max_caption_tokens

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from components.model.decoding import decode
        from components.training.batches import collate

        if len(rows["n_boxes"]) == 0:
            return {k: np.zeros((0,), dtype=object) for k in ("image_id", "box", "prediction", "reference")}
        batch, _ = collate(rows)
        with self.torch.no_grad():
            tokens = decode(self.model, batch.to(self.device), self.beam_size, self.max_tokens).cpu().tolist()
        owners = batch.image_index.tolist()
        first_box = np.concatenate([[0], np.cumsum(rows["n_boxes"])[:-1]])
        out: dict[str, list] = {
            k: [] for k in ("image_id", "box", "prediction", "reference", "x1", "y1", "x2", "y2", "width", "height")
        }
        for row, (owner, generated) in enumerate(zip(owners, tokens, strict=True)):
            box = batch.boxes[row].tolist()
            out["image_id"].append(str(rows["image_id"][owner]))
            out["box"].append(row - int(first_box[owner]))
            out["prediction"].append(self.tokenizer.decode(generated))
            out["reference"].append(self.tokenizer.decode(batch.captions[row, 1:].tolist()))
            for key, value in zip(("x1", "y1", "x2", "y2"), box, strict=True):
                out[key].append(value)
            out["width"].append(int(rows["size"][owner][0]))
            out["height"].append(int(rows["size"][owner][1]))
        return {k: np.asarray(v) for k, v in out.items()}


def predict_split(
    dataset: str,
    split: str,
    model_config: ModelConfig,
    weights,
    tokenizer: Tokenizer,
    *,
    beam_size: int = 1,
    limit: int | None = None,
    images_root: str | None = None,
    decode_actors: int = 1,
    predict_actors: int = 1,
    use_gpu: bool = False,
    batch_images: int = 16,
    tally=None,
) -> list[dict[str, Any]]:
    """Every box of the split with its generated and reference caption, sorted by image id and box."""
    import ray

    spec = EncodeSpec(
        grid=model_config.grid,
        neighbours=model_config.neighbours,
        max_info_tokens=model_config.max_info_tokens,
        max_caption_tokens=model_config.max_caption_tokens,
    )
    encoded = build_dataset(
        dataset, split, tokenizer, spec, images_root=images_root, actors=decode_actors, limit=limit, tally=tally
    )
    predicted = encoded.map_batches(
        CaptionPredictor,
        fn_constructor_kwargs=dict(
            model_config=model_config.as_dict(),
            weights=weights,
            word2int=tokenizer.word2int,
            mode=tokenizer.mode,
            beam_size=beam_size,
        ),
        batch_size=batch_images,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, predict_actors)),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
    )
    return sorted(predicted.take_all(), key=lambda r: (r["image_id"], int(r["box"])))


def evaluate_checkpoint(job, checkpoint, split: str, *, beam_size: int = 1, limit: int | None = None, meteor=True):
    """A checkpoint's predictions on a split of ``job.data.dataset`` and their scores (Ray must be up)."""
    import ray

    from components.evaluation.report import evaluate_rows

    model_config = ModelConfig.from_dict(checkpoint.job["model"])
    rows = predict_split(
        job.data.dataset,
        split,
        model_config,
        ray.put(checkpoint.model_state),
        checkpoint.tokenizer,
        beam_size=beam_size,
        limit=limit,
        images_root=job.data.images_root,
        decode_actors=job.data.decode_actors,
        use_gpu=job.ray.use_gpu,
    )
    return evaluate_rows(rows, checkpoint.tokenizer.mode, meteor=meteor), rows
