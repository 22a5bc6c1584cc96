"""Image preprocessing of the place-recognition demo: resize, greyscale, patch normalisation.

This is the front end of VPRSNN (Hussaini et al., ICRA 2023; docs/place-recognition.md): every frame
is resized to a small image, turned to grey, and *patch normalised* -- each pixel is replaced by its
deviation from the mean of the square patch around it, in units of that patch's standard deviation,
clipped to [-1, 1] and rescaled to 0..255. Patch normalisation removes slow illumination and contrast
changes, which is why a tiny image still matches across day and dusk; what it cannot remove (noise,
shifts, objects that changed) is what the place recogniser has to cope with.

Border patches use only the pixels inside the image (the patch is NaN-padded and the mean and
standard deviation ignore the padding), and a flat patch (standard deviation 0) gives 0, i.e. grey
128 -- both as in the paper's code. The resize uses Pillow (installed with matplotlib).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class PreprocessError(ValueError):
    """An image or a preprocessing parameter is unusable; the message names it and the fix."""


def check_patch_size(patch_size: int, shape: tuple[int, int] | None = None) -> int:
    """``patch_size`` as an int, or PreprocessError: it must be odd (centred on a pixel) and >= 1."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise PreprocessError(f"patch_size = {patch_size!r}: expected an odd whole number >= 1")
    if patch_size % 2 == 0:
        raise PreprocessError(
            f"patch_size = {patch_size}: expected an odd number (the patch is centred on its pixel); "
            f"use {patch_size - 1} or {patch_size + 1}"
        )
    if shape is not None and patch_size > max(shape):
        raise PreprocessError(
            f"patch_size = {patch_size} is larger than the {shape[0]} x {shape[1]} image; use a patch of "
            "at most the image size (the paper uses 7 on 28 x 28, a quarter of the width)"
        )
    return int(patch_size)


def patch_normalise(image: np.ndarray, patch_size: int) -> np.ndarray:
    """Patch-normalised float image in [-1, 1]: (pixel - patch mean) / patch std, clipped.

    ``image``: 2-D array (height, width) of grey values in any range."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise PreprocessError(f"patch_normalise takes a 2-D grey image, got shape {img.shape}")
    k = check_patch_size(patch_size, img.shape)
    half = k // 2
    padded = np.pad(img, half, mode="constant", constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k))  # (H, W, k, k)
    valid = ~np.isnan(windows)
    count = valid.sum(axis=(2, 3))
    filled = np.where(valid, windows, 0.0)
    mean = filled.sum(axis=(2, 3)) / count
    var = (np.where(valid, windows - mean[..., None, None], 0.0) ** 2).sum(axis=(2, 3)) / count
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (img - mean) / std
    out[~np.isfinite(out)] = 0.0
    return np.clip(out, -1.0, 1.0)


def to_uint8(normalised: np.ndarray) -> np.ndarray:
    """[-1, 1] -> 0..255 as the paper does it: ``uint8(255 (1 + x) / 2)`` (truncation)."""
    return (255.0 * (1.0 + np.asarray(normalised, dtype=np.float64)) / 2.0).astype(np.uint8)


def to_grey(image: np.ndarray) -> np.ndarray:
    """Grey float image from a (H, W) grey or (H, W, 3|4) RGB(A) array (ITU-R 601 luma, as OpenCV)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[..., :3].astype(np.float64)
        return rgb @ np.array([0.299, 0.587, 0.114])
    raise PreprocessError(f"expected a grey (H, W) or colour (H, W, 3) image, got shape {arr.shape}")


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a grey float image to ``size`` = (height, width) with Pillow's area-aware bilinear filter."""
    from PIL import Image

    h, w = size
    arr = np.asarray(image, dtype=np.float32)
    if arr.shape == (h, w):
        return arr.astype(np.float64)
    pil = Image.fromarray(arr, mode="F")
    return np.asarray(pil.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float64)


def preprocess(image: np.ndarray, size: tuple[int, int], patch_size: int) -> np.ndarray:
    """One frame -> the network's input image: resize, greyscale, patch normalisation, uint8 (H, W)."""
    h, w = _check_size(size)
    check_patch_size(patch_size, (h, w))
    return to_uint8(patch_normalise(resize(to_grey(image), (h, w)), patch_size))


def preprocess_many(images, size: tuple[int, int], patch_size: int) -> np.ndarray:
    """A stack (M, H, W) uint8 of preprocessed frames."""
    h, w = _check_size(size)
    out = [preprocess(img, (h, w), patch_size) for img in images]
    return np.stack(out) if out else np.zeros((0, h, w), dtype=np.uint8)


def load_image(path: Path) -> np.ndarray:
    """An image file as a float grey array; PreprocessError naming the file when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return to_grey(np.asarray(im.convert("RGB")))
    except (UnidentifiedImageError, OSError) as exc:
        raise PreprocessError(f"{path}: cannot read the image ({exc}); remove or replace the file") from None


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise PreprocessError(f"image size = {size!r}: expected (height, width)") from None
    if h < 1 or w < 1:
        raise PreprocessError(f"image size = {size!r}: both sides must be >= 1 pixel")
    return h, w
