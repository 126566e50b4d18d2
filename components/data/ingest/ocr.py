"""Reading the text on an image: OCR engines behind one small interface.

``RapidOcrEngine`` is the real one: rapidocr-onnxruntime (PP-OCRv4 detection, angle and recognition
ONNX models inside its wheel, so nothing is downloaded at run time), one engine per process, ONNX
Runtime held to the threads it is given. ``FixtureOcrEngine`` reads the texts from a JSON file, for
tests of everything around OCR. ``build_engine("rapidocr" | "fixture:PATH")`` picks one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

import numpy as np
from PIL import Image

from components import storage
from components.errors import ConfigError, DependencyError

RAPIDOCR = "rapidocr-onnxruntime"
Point = tuple[float, float]


@dataclass(frozen=True)
class OcrText:
    """One text line found on an image: its four corners in pixels, the text and the engine's score."""

    quad: tuple[Point, Point, Point, Point]
    text: str
    score: float = 1.0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2): the axis-aligned box around the corners, in pixels."""
        xs, ys = [p[0] for p in self.quad], [p[1] for p in self.quad]
        return min(xs), min(ys), max(xs), max(ys)


class OcrEngine(Protocol):
    def read(self, image: Image.Image, key: str) -> list[OcrText]:
        """The texts on ``image``; ``key`` is the image's path inside its partition."""


class RapidOcrEngine:
    def __init__(self, threads: int = 1):
        try:
            import cv2
            from rapidocr_onnxruntime import RapidOCR  # heavy: onnxruntime and opencv load here
        except ImportError as err:
            raise DependencyError(f"OCR needs {RAPIDOCR}==1.4.4 (and Debian's libgl1, libglib2.0-0): {err}") from err
        cv2.setNumThreads(max(1, threads))  # OpenCV's own pool would otherwise take every core of the node
        self.engine = RapidOCR(intra_op_num_threads=max(1, threads), inter_op_num_threads=1)

    def read(self, image: Image.Image, key: str) -> list[OcrText]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # OpenCV's channel order
        found, _ = self.engine(bgr)
        return [
            OcrText(tuple((float(x), float(y)) for x, y in quad), str(text), float(score))
            for quad, text, score in found or []
        ]

    def read_line(self, image: Image.Image) -> tuple[str, float]:
        """(text, score) of an image holding one line of text, by the recognition model alone: no
        detection (the caller knows where the line is), about 15 ms for a caption's line on one core."""
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        found, _ = self.engine(bgr, use_det=False, use_cls=False, use_rec=True)
        return (str(found[0][0]), float(found[0][1])) if found else ("", 0.0)


class FixtureOcrEngine:
    """Texts from a JSON file ``{key: [[x1, y1, x2, y2, text], ...]}`` (pixels), whatever the image shows."""

    def __init__(self, location: str):
        self.texts = json.loads(storage.read_bytes(location).decode("utf-8"))

    def read(self, image: Image.Image, key: str) -> list[OcrText]:
        return [
            OcrText(((x1, y1), (x2, y1), (x2, y2), (x1, y2)), text) for x1, y1, x2, y2, text in self.texts.get(key, [])
        ]


def build_engine(spec: str, threads: int = 1) -> OcrEngine:
    """``rapidocr`` or ``fixture:PATH``."""
    if spec == "rapidocr":
        return RapidOcrEngine(threads)
    if spec.startswith("fixture:"):
        return FixtureOcrEngine(spec.removeprefix("fixture:"))
    raise ConfigError("ingest.ocr_engine", f"must be 'rapidocr' or 'fixture:PATH' (got {spec!r})")


def engine_id(spec: str) -> str:
    """What a partition's ingest key records of the engine: its package version, or the fixture's hash."""
    if spec == "rapidocr":
        try:
            return f"{RAPIDOCR}=={version(RAPIDOCR)}"
        except PackageNotFoundError as err:
            raise DependencyError(f"OCR needs {RAPIDOCR}==1.4.4: pip install {RAPIDOCR}==1.4.4") from err
    if spec.startswith("fixture:"):
        return "fixture:" + hashlib.sha256(storage.read_bytes(spec.removeprefix("fixture:"))).hexdigest()[:12]
    raise ConfigError("ingest.ocr_engine", f"must be 'rapidocr' or 'fixture:PATH' (got {spec!r})")
