"""Finding a font that can draw the captions (CJK for Chinese)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from PIL import ImageFont

from components.errors import DependencyError

_CJK_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
_LATIN_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
INSTALL_HINT = "install one with: apt-get install -y fonts-noto-cjk fonts-wqy-microhei (or pass --lang en)"


def _fc_match(pattern: str) -> str | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}", pattern], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@functools.cache
def find_font(lang: str) -> str | None:
    """Path of a font for ``lang`` (``zh`` needs CJK glyphs); ``None`` for English means Pillow's own."""
    candidates = _CJK_CANDIDATES if lang == "zh" else _LATIN_CANDIDATES + _CJK_CANDIDATES
    for path in candidates:
        if Path(path).is_file():
            return path
    if lang == "zh":
        found = _fc_match(":lang=zh")
        if found and Path(found).is_file() and Path(found).suffix.lower() in (".ttc", ".ttf", ".otf"):
            return found
        raise DependencyError(f"no CJK font found to draw Chinese captions; {INSTALL_HINT}")
    return None


@functools.cache
def load_font(lang: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = find_font(lang)
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size=size)
