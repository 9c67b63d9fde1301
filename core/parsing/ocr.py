"""OCR with RapidOCR: PP-OCR detection and recognition (Chinese and English) run by onnxruntime.

The models ship inside the `rapidocr-onnxruntime` wheel; nothing is downloaded at run time. One engine
per process, loaded on first use (about 1 s) and shared under a lock: onnxruntime already uses every core
for one image.
"""

from __future__ import annotations

import io
import threading
import warnings
from typing import Any

import numpy as np

from core.errors import CorruptFileError, OcrError

_engine: Any = None
_lock = threading.Lock()

# Pages are read at this width in pixels. Wider, PP-OCR's recogniser drops the spaces between English words:
# on a Debian Reference page (A4, 43 words) rendered 600 / 800 / 1000 px wide it got 39 / 35 / 17 words
# right (a scan of it: 37 / 5 / 1), and Chinese lost little (1,299 / 1,311 of 1,324 characters).
OCR_WIDTH = 600

# Pillow's guard against decompression bombs, as an error: 50 megapixels is a 600 dpi A3 scan.
MAX_IMAGE_PIXELS = 50_000_000


def _load() -> Any:
    global _engine
    if _engine is None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:  # opencv-python needs libGL.so.1 (Debian: libgl1)
            raise OcrError(
                f"OCR is not available in this install ({e}); run `make run` again to install it, "
                "or on Debian `apt-get install libgl1`."
            ) from e
        _engine = RapidOCR()
    return _engine


def read_image(pixels: np.ndarray[Any, Any]) -> str:
    """Text lines of an image (height x width x BGR), top to bottom, words on one line left to right."""
    with _lock:
        engine = _load()
        # Pages are upright; the angle classifier turned some straight lines upside down (measured on the
        # Debian Reference) and costs time.
        result, _ = engine(np.ascontiguousarray(pixels), use_cls=False)
    return lines_of(result or [])


def lines_of(result: list[Any]) -> str:
    """RapidOCR's boxes ([corners, text, score]) merged into lines by their vertical centres."""
    boxes = []
    for corners, text, _score in result:
        ys = [float(p[1]) for p in corners]
        xs = [float(p[0]) for p in corners]
        boxes.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), str(text)))
    boxes.sort()
    lines: list[list[tuple[float, str]]] = []
    centre = height = 0.0
    for y, h, x, text in boxes:
        if lines and abs(y - centre) < max(h, height) / 2:
            lines[-1].append((x, text))
        else:
            lines.append([(x, text)])
            centre, height = y, h
    return "\n".join(" ".join(t for _, t in sorted(line)) for line in lines)


def read_image_file(data: bytes, name: str) -> str:
    """OCR of a PNG or JPEG upload.

    Raises:
        CorruptFileError: not a readable image, or larger than MAX_IMAGE_PIXELS.

    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise CorruptFileError(
                        f"{name} is {image.width}x{image.height} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} "
                        "megapixel limit; scale it down (300 dpi is plenty for OCR) and upload again."
                    )
                rgb_image = image.convert("RGB")
                if rgb_image.width > OCR_WIDTH * 1.1:
                    height = round(rgb_image.height * OCR_WIDTH / rgb_image.width)
                    rgb_image = rgb_image.resize((OCR_WIDTH, height), Image.Resampling.LANCZOS)
                rgb = np.asarray(rgb_image)
    except CorruptFileError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise CorruptFileError(
            f"{name} is not a readable image ({e}); open it in an image viewer, save it again as PNG or JPEG, "
            "and upload that."
        ) from e
    return read_image(rgb[:, :, ::-1])  # RGB -> BGR, as OpenCV reads
