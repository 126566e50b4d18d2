import numpy as np
import pytest
from PIL import Image

from components.data.record.boxes import Box
from components.data.transforms.masking import IMAGENET_MEAN, IMAGENET_STD, box_pixel_bounds, mask_boxes, prepare_image


def random_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    # Values 1..255 so that no pixel is black before masking.
    return np.random.default_rng(seed).integers(1, 256, size=(height, width, 3), dtype=np.uint8)


def test_mask_blackens_inside_every_box_and_nothing_outside():
    width, height = 256, 341
    pixels = random_image(width, height)
    boxes = [Box(0.1, 0.1, 0.4, 0.2), Box(0.35, 0.15, 0.6, 0.3), Box(0.0, 0.9, 1.0, 1.0), Box(0.7, 0.5, 0.71, 0.52)]
    masked = mask_boxes(pixels, boxes)
    inside = np.zeros((height, width), dtype=bool)
    for box in boxes:
        x1, y1, x2, y2 = box_pixel_bounds(box, width, height)
        inside[y1 : y2 + 1, x1 : x2 + 1] = True
    assert (masked[inside] == 0).all()
    assert (masked[~inside] == pixels[~inside]).all()
    assert pixels.min() > 0  # the input is untouched


def test_mask_is_inclusive_of_both_corners():
    pixels = random_image(100, 50)
    box = Box(10 / 100, 5 / 50, 20 / 100, 15 / 50)  # pixel box 10_5_20_15
    assert box_pixel_bounds(box, 100, 50) == (10, 5, 20, 15)
    masked = mask_boxes(pixels, [box])
    assert (masked[5, 10] == 0).all() and (masked[15, 20] == 0).all()
    assert (masked[4, 10] != 0).all() and (masked[15, 21] != 0).all() and (masked[16, 20] != 0).all()
    assert int((masked.sum(axis=2) == 0).sum()) == 11 * 11


def test_prepare_image_masks_before_resizing_and_normalises():
    pixels = np.full((256, 256, 3), 200, dtype=np.uint8)
    out = prepare_image(Image.fromarray(pixels), [Box(0.0, 0.0, 0.5, 1.0)], grid=4)
    assert out.shape == (3, 128, 128) and out.dtype == np.float32
    black = (0 - IMAGENET_MEAN) / IMAGENET_STD
    grey = (200 / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(out[:, 10, 10], black, atol=1e-5)  # left half masked
    np.testing.assert_allclose(out[:, 10, 120], grey, atol=1e-5)  # right half untouched


@pytest.mark.parametrize("grid", [4, 8])
def test_prepare_image_size_follows_grid(grid):
    out = prepare_image(Image.fromarray(random_image(341, 256)), [], grid=grid)
    assert out.shape == (3, 32 * grid, 32 * grid)


def test_uint8_pixels_normalised_by_the_backbone_match_prepare_image():
    import torch

    from components.data.transforms.masking import masked_pixels
    from components.model.backbone import GridBackbone

    image = Image.fromarray(random_image(341, 256, seed=3))
    mask = [Box(0.2, 0.2, 0.5, 0.3)]
    as_bytes = torch.from_numpy(masked_pixels(image, mask, grid=2))[None]
    as_floats = torch.from_numpy(prepare_image(image, mask, grid=2))[None]
    assert as_bytes.dtype == torch.uint8 and as_bytes.shape == (1, 3, 64, 64)
    backbone = GridBackbone("resnet18", grid=2).eval()
    torch.testing.assert_close(backbone(as_bytes), backbone(as_floats), rtol=1e-5, atol=1e-5)
