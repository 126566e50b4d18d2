"""The one image opener: every way an image can be unusable is a named reason, locally and on S3."""

import struct
import zlib

import pytest
from PIL import Image

from components.data.record.images import image_size, open_image
from components.data.record.rejection import RecordRejected


def png_declaring(width: int, height: int) -> bytes:
    """A few bytes of PNG whose header declares ``width`` x ``height`` pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture
def root(tmp_path):
    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "bomb.png").write_bytes(png_declaring(30000, 30000))  # 900 M pixels in 60 bytes
    (tmp_path / "large.png").write_bytes(png_declaring(9000, 8000))  # under Pillow's own limit, over ours
    (tmp_path / "folder.png").mkdir()
    (tmp_path.parent / "outside.png").write_bytes((tmp_path / "good.png").read_bytes())
    return tmp_path


def test_a_good_image_opens_with_its_bytes_and_location(root):
    opened = open_image(str(root), "good.png")
    assert opened.image.size == (40, 30) and opened.location == str(root / "good.png")
    assert opened.data == (root / "good.png").read_bytes() and image_size(str(root), "good.png") == (40, 30)


@pytest.mark.parametrize(
    "relative,reason",
    [
        ("../outside.png", "unsafe_path"),
        ("/etc/hostname", "unsafe_path"),
        ("nul\x00byte.png", "unsafe_path"),  # no filesystem can name it
        ("lone\ud800surrogate.png", "unsafe_path"),
        ("absent.png", "missing_image"),
        ("folder.png", "missing_image"),
        ("bad.png", "corrupt_image"),
        ("bomb.png", "oversized_image"),
        ("large.png", "oversized_image"),
    ],
)
def test_each_failure_has_its_reason(root, relative, reason):
    for opener in (open_image, image_size):
        with pytest.raises(RecordRejected) as raised:
            opener(str(root), relative)
        assert (raised.value.rejection_field, raised.value.reason) == ("image", reason)


def test_the_same_opener_reads_object_stores(s3_bucket, root):
    from components import storage

    storage.write_bytes(f"{s3_bucket}/opener/good.png", (root / "good.png").read_bytes())
    assert open_image(f"{s3_bucket}/opener", "good.png").image.size == (40, 30)
    with pytest.raises(RecordRejected, match="missing_image"):
        open_image(f"{s3_bucket}/opener", "absent.png")
    with pytest.raises(RecordRejected, match="unsafe_path"):
        open_image(f"{s3_bucket}/opener", "../good.png")
