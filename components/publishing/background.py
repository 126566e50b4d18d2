"""The background a caption is published on: the product image with the text already in its caption
boxes removed, each box filled in from its surroundings (OpenCV's Telea inpainting), so a new caption
is judged, drawn and read back on what the shopper will see around it, not on the old text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from components.errors import DependencyError
from components.publishing.fit import Bounds

INPAINT_RADIUS = 3
MARGIN = 2  # pixels around each box also repainted: anti-aliased edges of the old text


def clean_background(image: Image.Image, boxes: Sequence[Bounds]) -> Image.Image:
    """``image`` (RGB) with every box in ``boxes`` inpainted from the pixels around it."""
    try:
        import cv2  # OpenCV comes with the OCR engine (rapidocr-onnxruntime)
    except ImportError as err:
        raise DependencyError(f"cleaning caption boxes needs OpenCV (opencv-python): {err}") from err
    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    mask = np.zeros(pixels.shape[:2], np.uint8)
    for x1, y1, x2, y2 in boxes:
        mask[max(0, y1 - MARGIN) : y2 + MARGIN + 1, max(0, x1 - MARGIN) : x2 + MARGIN + 1] = 255
    if not mask.any():
        return image.convert("RGB").copy()
    return Image.fromarray(cv2.inpaint(pixels, mask, INPAINT_RADIUS, cv2.INPAINT_TELEA))
