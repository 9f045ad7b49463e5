"""The feature store: each image is encoded once and its features handed out by key.

A key names an image the caller may need again: a prompted frame of a clip (``("frame", i)``), a
reference image, a photo. :meth:`FeatureStore.get` returns the features kept under the key, and
encodes the image only when none are kept. The store holds at most ``capacity`` images; when a new
one would exceed it, the one used least recently is dropped (and encoded again if asked for again:
every caller hands the image, or a way to read it, with the key).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, List, Optional, Tuple, Union

import numpy as np
import torch

DEFAULT_CAPACITY = 16  # images kept; a 1024-pixel SAM embedding is 4 MiB


@dataclass(frozen=True)
class Features:
    """One encoded image: its embedding (1, C, h, w), its (H, W) size, the resized (h, w) the
    model saw, and the high-resolution feature maps SAM 2.1's decoder also reads (None for SAM)."""

    embedding: torch.Tensor
    original_size: Tuple[int, int]
    input_size: Tuple[int, int]
    high_res: Optional[Tuple[torch.Tensor, ...]] = None


ImageSource = Union[np.ndarray, Callable[[], np.ndarray], None]


class FeatureStore:
    """Features by key, encoded once with ``encode``; at most ``capacity`` kept, the least recently
    used dropped first."""

    def __init__(self, encode: Callable[[np.ndarray], Features], capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a feature store keeps at least one image")
        self._encode = encode
        self.capacity = int(capacity)
        self._kept: "OrderedDict[Hashable, Features]" = OrderedDict()

    def get(self, key: Hashable, image: ImageSource = None) -> Features:
        """The features of the image named ``key``; ``image`` (RGB uint8, or a function that reads it)
        is encoded when none are kept. A RuntimeError if neither is there."""
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return kept
        if image is None:
            raise RuntimeError(f"no image for {key!r}, and none is kept")
        features = self._encode(image() if callable(image) else image)
        self._kept[key] = features
        while len(self._kept) > self.capacity:
            self._kept.popitem(last=False)
        return features

    def __contains__(self, key: Hashable) -> bool:
        return key in self._kept

    def keys(self) -> List[Hashable]:
        """The keys kept, least recently used first."""
        return list(self._kept)

    def retain(self, keys: Iterable[Hashable] = ()) -> None:
        """Drop every image but those of ``keys`` (none: empty the store)."""
        wanted = set(keys)
        for key in [k for k in self._kept if k not in wanted]:
            del self._kept[key]
