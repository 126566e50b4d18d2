"""Batch captioning of a dataset split with Ray Data: one row per box out, predictions beside references."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from PIL import Image

from components import storage
from components.cluster import actor_pool, object_column
from components.config import JobConfig, ModelConfig, PublishSection
from components.data.pipeline.stream import build_dataset
from components.data.record.boxes import Box
from components.data.record.images import open_image
from components.data.record.tokenizer import Tokenizer
from components.data.release.dataset import PreparedDataset
from components.data.transforms.encoding import EncodeSpec, row_references
from components.data.transforms.requests import request_image
from components.evaluation.fields import FieldSheet
from components.evaluation.report import EvaluationReport, evaluate_rows
from components.model.checkpoint import LoadedCheckpoint
from components.model.inference import Captioner
from components.progress import logged_progress
from components.publishing.compliance import forbidden_sequences
from components.publishing.records import build_publisher, publish_boxes

log = logging.getLogger(__name__)


class CaptionPredictor:
    """``map_batches`` callable for an actor pool: encoded image rows in, one row per box out (the
    batch captioner of evaluation and of batch captioning alike). ``keep``: per-image columns of the
    input (a request's id, info, boxes ...) repeated on each of its boxes' rows.

    With ``publish`` checks, each box's caption is chosen among its ``publish.candidates`` most likely
    by the publishing checks (``components.publishing``), judged on the image as stored: read from
    ``images_root`` (``<image_id>.png``) or from the ``request_source`` column. Each box's row then also
    has its most likely candidate (``first_prediction``) and its verdict (``verdict``, JSON). With
    ``publish.forbid_banned``, decoding never completes a term of the compliance list."""

    COLUMNS = ("image_id", "box", "prediction", "reference", "x1", "y1", "x2", "y2", "width", "height")
    PUBLISHED = ("first_prediction", "verdict")
    SOURCE = "request_source"  # a batch request's own column (``serving.batch``) beside the encoded ones

    def __init__(
        self,
        model_config: dict[str, Any],
        weights,
        tokenizer: Tokenizer,
        beam_size: int = 1,
        keep: tuple = (),
        publish: PublishSection | None = None,
        images_root: str | None = None,
    ):
        import ray

        state = ray.get(weights) if isinstance(weights, ray.ObjectRef) else weights
        self.captioner = Captioner(ModelConfig.from_dict(model_config), state, tokenizer)
        self.beam_size, self.keep = beam_size, tuple(keep)
        self.publish = publish if publish is not None and publish.checks else None
        self.images_root = images_root
        forbid = publish is not None and publish.forbid_banned
        self.forbidden = forbidden_sequences(tokenizer) if forbid else ()
        self.publisher = None
        if self.publish is not None:
            settings = self.publish
            self.publisher = build_publisher(
                settings.checks, min_font_fraction=settings.min_font_fraction, min_contrast=settings.min_contrast
            )

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.COLUMNS, *(self.PUBLISHED if self.publish else ()), *self.keep)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(rows["n_boxes"]) == 0:
            return {k: object_column([]) for k in self.columns}
        chosen, extra = self.captions(rows)
        out: dict[str, list] = {k: [] for k in self.columns}
        references = row_references(rows)  # the raw strings: scores never see a rebuilt <unk>
        for owner, image_id in enumerate(rows["image_id"]):
            for box in range(int(rows["n_boxes"][owner])):
                out["image_id"].append(str(image_id))
                out["box"].append(box)
                out["prediction"].append(chosen[owner][box])
                out["reference"].append(references[owner][box])
                for key, value in zip(("x1", "y1", "x2", "y2"), rows["boxes"][owner][box].tolist(), strict=True):
                    out[key].append(value)
                out["width"].append(int(rows["size"][owner][0]))
                out["height"].append(int(rows["size"][owner][1]))
                for column, values in extra.items():
                    out[column].append(values[owner][box])
                for column in self.keep:
                    out[column].append(rows[column][owner])
        return {k: object_column(v) if k in self.keep else np.asarray(v) for k, v in out.items()}

    def captions(self, rows: dict[str, np.ndarray]) -> tuple[list[list[str]], dict[str, list[list[str]]]]:
        """Per image, per box: the caption, and the published columns (none without checks)."""
        if self.publish is None:
            return self.captioner.caption(rows, self.beam_size, self.forbidden)[1], {}
        per_image = self.captioner.candidates(rows, max(self.beam_size, self.publish.candidates), self.forbidden)
        chosen, first, verdicts = [], [], []
        for owner, per_box in enumerate(per_image):
            options = [box_options[: self.publish.candidates] for box_options in per_box]
            boxes = [Box(*b) for b in rows["boxes"][owner][: len(per_box)].tolist()]
            judged, _ = publish_boxes(self.publisher, self.image(rows, owner), boxes, str(rows["info"][owner]), options)
            chosen.append([v.caption for v in judged])
            first.append([box_options[0][0] for box_options in options])
            verdicts.append([json.dumps(v.as_dict(), ensure_ascii=False) for v in judged])
        return chosen, {"first_prediction": first, "verdict": verdicts}

    def image(self, rows: dict[str, np.ndarray], owner: int) -> Image.Image:
        """The image of row ``owner`` as stored (the encoded pixels are masked and resized)."""
        image_id = str(rows["image_id"][owner])
        if self.images_root is not None:
            return open_image(self.images_root, f"{image_id}.png").image
        if self.SOURCE not in rows:
            raise ValueError(f"publishing checks need the stored images: give images_root or a {self.SOURCE} column")
        return request_image(storage.read_bytes(str(rows[self.SOURCE][owner])), image_id)


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
    publish: PublishSection | None = None,
    images_root: str | None = None,
):
    """The one batch captioner over Ray Data: a Ray Dataset of encoded rows captioned by an actor pool
    holding the model (``weights``: a state dict or its object reference), one row per box out; with
    ``publish`` checks, chosen among candidates on the stored images (``CaptionPredictor``)."""
    return encoded.map_batches(
        CaptionPredictor,
        fn_constructor_kwargs=dict(
            model_config=model_config.as_dict(),
            weights=weights,
            tokenizer=tokenizer,
            beam_size=beam_size,
            keep=keep,
            publish=publish,
            images_root=images_root,
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
    publish: PublishSection | None = None,
) -> list[dict[str, Any]]:
    """Every box of the split with its generated and reference caption, sorted by image id and box;
    the model reads and writes ``dataset.tokenizer`` (``index``: the split's index, when the caller
    has read it already; ``seed``: the training seed, from which a ``random2`` model's neighbours are
    drawn; ``publish``: the publishing checks that choose each caption, judged on the stored images)."""

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
        publish=publish,
        images_root=dataset.images_root,
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
    where the dataset has a truth. The job's ``publish`` checks choose the captions."""
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
        publish=job.publish,
    )
    report = evaluate_rows(rows, checkpoint.tokenizer.mode, meteor=meteor, fields=fields, checks=job.publish.checks)
    return report, rows
