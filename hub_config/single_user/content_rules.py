"""What may cross the browser path of a workspace, judged by a file's bytes, never by its name.

Binary (base64) transfer is allowed only for raster images whose bytes decode, with Pillow, as
the image type their suffix names; what crosses is the image re-encoded from its decoded pixels
(content disarm and reconstruction), so bytes hidden after the image's end or in its metadata
chunks (a zip appended to a PNG, a parquet renamed ``leak.png``) never cross. Everything else is
refused as binary, both ways. Text is what decodes as UTF-8.

Pillow is the library for this (decoding, format detection, decompression-bomb guard); only the
policy is written here. Each rule is a small named function, so each can be read and tested alone.
"""
from __future__ import annotations

import enum
import hashlib
import io
import json
from dataclasses import dataclass

# Suffix -> the Pillow format the bytes must decode as. SVG is not here: it is text, served as text.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".webp": "WEBP"}
MIMETYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
MAX_IMAGE_PIXELS = 40_000_000  # a figure, not a decompression bomb


class NotAnImage(ValueError):
    """The bytes are not a decodable image of the type the file name claims; ``reason`` is safe to show."""


class Direction(str, enum.Enum):
    """Which way a transfer crosses the browser path."""

    egress = "out"
    ingress = "in"


@dataclass(frozen=True)
class DisarmedImage:
    """An image rebuilt from its decoded pixels."""

    data: bytes
    format: str

    @property
    def mimetype(self) -> str:
        return MIMETYPES[self.format]


def suffix_of(path: str) -> str:
    """The lower-case suffix of a path's last component ("" if none)."""
    name = path.rsplit("/", 1)[-1]
    return ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""


def claimed_image_format(path: str) -> str | None:
    """The image format a path's suffix claims, or None if it names no allowed image type."""
    return IMAGE_FORMATS.get(suffix_of(path))


def disarm_image(data: bytes, path: str, *, max_bytes: int) -> DisarmedImage:
    """Decode ``data`` as the image type ``path`` names and re-encode it, or raise NotAnImage."""
    from PIL import Image, UnidentifiedImageError  # imported on first use: it costs every server start otherwise

    expected = claimed_image_format(path)
    if expected is None:
        raise NotAnImage(f"{suffix_of(path) or 'no suffix'} is not an allowed image type")
    if len(data) > max_bytes:
        raise NotAnImage(f"image larger than {max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(data), formats=[expected]) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise NotAnImage("image has too many pixels")
            frames = getattr(image, "n_frames", 1)
            image.load()  # a full decode: a truncated or forged body fails here, not at the header
            out = io.BytesIO()
            if expected == "GIF" and frames > 1:
                image.save(out, format=expected, save_all=True)
            elif expected == "JPEG":
                image.save(out, format=expected, quality=95)
            elif expected == "PNG":
                image.save(out, format=expected, compress_level=1)  # speed over size: 4-5x faster than the default 6
            else:
                image.save(out, format=expected)
    except NotAnImage:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise NotAnImage(f"the bytes do not decode as {expected}: {type(error).__name__}") from None
    return DisarmedImage(out.getvalue(), expected)


def decodes_as_text(data: bytes) -> bool:
    """True when ``data`` is UTF-8 text (what the editor opens)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_typed_bytes(notebook: dict) -> int:
    """Bytes of what a person types or pastes into a notebook: cell sources and attachments.

    Outputs are left out: they are what the kernel printed, and counting them would refuse the
    save of every notebook that has just drawn a few figures.
    """
    total = 0
    for cell in notebook.get("cells", []) if isinstance(notebook, dict) else []:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        total += len(("".join(source) if isinstance(source, list) else str(source)).encode("utf-8"))
        if cell.get("attachments"):
            total += len(json.dumps(cell["attachments"]).encode("utf-8"))
    return total
