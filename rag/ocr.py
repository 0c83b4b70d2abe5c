"""Offline OCR of a page image: RapidOCR with the PP-OCR Chinese models its wheel ships.

Nothing is downloaded: `rapidocr` 3.10 carries its detection, direction and recognition models
inside the package (docs/formats.md says why this package and not `rapidocr-onnxruntime`).
"""

from __future__ import annotations

from functools import cache

# (left, top, right, bottom, text) of one run of text, in the image's pixels
Box = tuple[float, float, float, float, str]
_images_read = 0


def images_read() -> int:
    """Images (pages) OCR has read in this process so far: an ingest counts a file's OCR pages as
    the change over its loading."""
    return _images_read


@cache
def _engine():
    """The OCR engine, built once per process (0.4 s: it loads three ONNX models)."""
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.log_level": "error"})


def read_image(pixels) -> list[Box]:
    """The runs of text RapidOCR finds in an RGB image (a height × width × 3 uint8 array)."""
    global _images_read
    found = _engine()(pixels)
    _images_read += 1
    if found.boxes is None:
        return []
    return [
        (float(corners[:, 0].min()), float(corners[:, 1].min()), float(corners[:, 0].max()), float(corners[:, 1].max()), text)
        for corners, text in zip(found.boxes, found.txts)
        if text.strip()
    ]
