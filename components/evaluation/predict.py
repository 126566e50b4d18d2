"""Batch captioning of a dataset split with Ray Data: one row per box out, predictions beside references."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from components.cluster import actor_pool, object_column
from components.config import JobConfig, ModelConfig
from components.data.pipeline.stream import build_dataset
from components.data.record.tokenizer import Tokenizer
from components.data.release.dataset import PreparedDataset
from components.data.transforms.encoding import EncodeSpec, row_references
from components.evaluation.fields import FieldSheet
from components.evaluation.report import EvaluationReport, evaluate_rows
from components.model.checkpoint import LoadedCheckpoint
from components.model.inference import Captioner
from components.progress import logged_progress

log = logging.getLogger(__name__)


class CaptionPredictor:
    """``map_batches`` callable for an actor pool: encoded image rows in, one row per box out (the
    batch captioner of evaluation and of batch captioning alike). ``keep``: per-image columns of the
    input (a request's id, info, boxes ...) repeated on each of its boxes' rows."""

    COLUMNS = ("image_id", "box", "prediction", "reference", "x1", "y1", "x2", "y2", "width", "height")

    def __init__(
        self, model_config: dict[str, Any], weights, tokenizer: Tokenizer, beam_size: int = 1, keep: tuple = ()
    ):
        import ray

        state = ray.get(weights) if isinstance(weights, ray.ObjectRef) else weights
        self.captioner = Captioner(ModelConfig.from_dict(model_config), state, tokenizer)
        self.beam_size, self.keep = beam_size, tuple(keep)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(rows["n_boxes"]) == 0:
            return {k: object_column([]) for k in (*self.COLUMNS, *self.keep)}
        batch, captions = self.captioner.caption(rows, self.beam_size)
        out: dict[str, list] = {k: [] for k in self.COLUMNS}
        owners = batch.image_index.tolist()
        references = row_references(rows)  # the raw strings: scores never see a rebuilt <unk>
        first_box = np.concatenate([[0], np.cumsum(rows["n_boxes"])[:-1]])
        for row, owner in enumerate(owners):
            box = row - int(first_box[owner])  # boxes of one image are consecutive rows
            out["image_id"].append(str(rows["image_id"][owner]))
            out["box"].append(box)
            out["prediction"].append(captions[owner][box])
            out["reference"].append(references[owner][box])
            for key, value in zip(("x1", "y1", "x2", "y2"), batch.boxes[row].tolist(), strict=True):
                out[key].append(value)
            out["width"].append(int(rows["size"][owner][0]))
            out["height"].append(int(rows["size"][owner][1]))
        kept = {column: object_column([rows[column][owner] for owner in owners]) for column in self.keep}
        return {**{k: np.asarray(v) for k, v in out.items()}, **kept}


def caption_rows(
    encoded,
    model_config: ModelConfig,
    weights,
    tokenizer: Tokenizer,
    *,
    beam_size: int = 1,
    actors: int = 1,
    use_gpu: bool = False,
    batch_images: int = 16,
    keep: tuple[str, ...] = (),
):
    """The one batch captioner over Ray Data: a Ray Dataset of encoded rows captioned by an actor pool
    holding the model (``weights``: a state dict or its object reference), one row per box out."""
    return encoded.map_batches(
        CaptionPredictor,
        fn_constructor_kwargs=dict(
            model_config=model_config.as_dict(), weights=weights, tokenizer=tokenizer, beam_size=beam_size, keep=keep
        ),
        batch_size=batch_images,
        compute=actor_pool(actors),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
    )


def predict_split(
    dataset: PreparedDataset,
    split: str,
    model_config: ModelConfig,
    weights,
    *,
    beam_size: int = 1,
    limit: int | None = None,
    decode_actors: int = 1,
    predict_actors: int = 1,
    use_gpu: bool = False,
    batch_images: int = 16,
    seed: int = 0,
    tally=None,
    index: list[dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Every box of the split with its generated and reference caption, sorted by image id and box;
    the model reads and writes ``dataset.tokenizer`` (``index``: the split's index, when the caller
    has read it already; ``seed``: the training seed, from which a ``random2`` model's neighbours are
    drawn)."""

    spec = EncodeSpec.for_model(model_config, seed=seed)
    encoded = build_dataset(
        dataset,
        split,
        spec,
        actors=decode_actors,
        limit=limit,
        tally=tally,
        index=index,
    )
    predicted = caption_rows(
        encoded,
        model_config,
        weights,
        dataset.tokenizer,
        beam_size=beam_size,
        actors=predict_actors,
        use_gpu=use_gpu,
        batch_images=batch_images,
    )
    rows = logged_progress(predicted.iter_rows(), None, "boxes captioned", log)
    return sorted(rows, key=lambda r: (r["image_id"], int(r["box"])))


def evaluate_checkpoint(
    job: JobConfig,
    dataset: PreparedDataset,
    checkpoint: LoadedCheckpoint,
    split: str,
    index: list[dict[str, str]],
    *,
    beam_size: int = 1,
    meteor: bool = True,
    fields: FieldSheet | None = None,
) -> tuple[EvaluationReport, list[dict[str, Any]]]:
    """A checkpoint's predictions on the indexed images of a split of ``dataset`` (read with the
    checkpoint's vocabulary) and their scores (Ray must be up); ``fields``: the split's field sheet,
    where the dataset has a truth."""
    import ray

    rows = predict_split(
        dataset.with_tokenizer(checkpoint.tokenizer),
        split,
        ModelConfig.from_dict(checkpoint.job["model"]),
        ray.put(checkpoint.model_state),
        beam_size=beam_size,
        decode_actors=job.data.decode_actors,
        use_gpu=job.ray.use_gpu,
        seed=checkpoint.seed,
        index=index,
    )
    return evaluate_rows(rows, checkpoint.tokenizer.mode, meteor=meteor, fields=fields), rows
