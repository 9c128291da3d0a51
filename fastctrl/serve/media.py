"""Images of a chat request: ``image_url`` parts as the server accepts them.

A ``data:image/...;base64,...`` URL is decoded in memory. A local file (``file://`` URL or an
absolute path) is read only when the server was started with ``--allowed_local_media_path``
and the file lies under it (vLLM's rule; symlinks resolved first). Remote ``http(s)`` URLs are
refused: the server fetches nothing. Every limit names the part it refused.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from PIL import Image, UnidentifiedImageError


class MediaError(ValueError):
    """An image part the server cannot take; ``param`` names it, ``status`` is the HTTP code."""

    def __init__(self, message: str, param: str, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


@dataclass(frozen=True)
class MediaLimits:
    max_image_bytes: int = 8 * 1024 * 1024
    """Largest encoded image (bytes); larger: 413."""
    max_image_pixels: int = 16_000_000
    """Largest decoded image (width x height); larger: 413 (decompression bombs)."""
    allowed_local_media_path: Path | None = None
    """Local files are served only under this directory (None: no local files)."""


def load_image(url: str, limits: MediaLimits, param: str) -> Image.Image:
    """The RGB image an ``image_url`` names."""
    if url.startswith("data:"):
        data = _data_url(url, param)
    elif url.startswith(("http://", "https://")):
        raise MediaError(
            "remote image URLs are not fetched by this server; send the image as a "
            "data:image/...;base64 URL",
            param,
        )
    else:
        data = _local_file(url, limits, param)
    if len(data) > limits.max_image_bytes:
        raise MediaError(
            f"image is {len(data)} bytes, over the limit of {limits.max_image_bytes}", param, 413
        )
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > limits.max_image_pixels:
                raise MediaError(
                    f"image is {w}x{h} pixels, over the limit of {limits.max_image_pixels}",
                    param,
                    413,
                )
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
        if isinstance(e, MediaError):
            raise
        raise MediaError(f"not a decodable image ({type(e).__name__}: {e})", param) from None


def data_url(image: Any, fmt: str = "PNG") -> str:
    """An image (PIL, or an HxW / HxWx3 uint8 array) as the ``data:image/...;base64,`` URL a
    client sends (the load test, the tests)."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def _data_url(url: str, param: str) -> bytes:
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise MediaError("a data URL must look like data:image/<type>;base64,<data>", param)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("the data URL's base64 payload is malformed", param) from None


def _local_file(url: str, limits: MediaLimits, param: str) -> bytes:
    root = limits.allowed_local_media_path
    if root is None:
        raise MediaError(
            "local image paths are refused unless the server is started with "
            "--allowed_local_media_path",
            param,
        )
    parsed = urlparse(url)
    if parsed.scheme not in ("", "file"):
        raise MediaError(f"unsupported image URL scheme {parsed.scheme!r}", param)
    path = Path(unquote(parsed.path if parsed.scheme == "file" else url))
    if not path.is_absolute():
        raise MediaError("a local image path must be absolute", param)
    real, base = path.resolve(), root.resolve()
    if not real.is_relative_to(base):
        raise MediaError(f"{path} is outside --allowed_local_media_path {root}", param, 403)
    if not real.is_file():
        raise MediaError(f"no image file at {path}", param)
    return real.read_bytes()
