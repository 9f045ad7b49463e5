"""``--presence auto``: the threshold between "object there" and "object absent" taken from the
collection itself. An album's peak target similarities form two groups when the object is missing
from some photos; Otsu's threshold splits them with no ratio to tune."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import PersamError

AUTO = "auto"
#: the share of the similarities' variance that the two groups must explain for a split to be taken;
#: below it the album is one group (the object in every photo, or in none) and nothing is dropped
SEPARATION = 0.75


def presence_value(text: Union[str, float]) -> Union[str, float]:
    """``auto`` or a ratio in [0, 1] (a flag's text or a value), checked."""
    if isinstance(text, str) and text.strip().lower() == AUTO:
        return AUTO
    try:
        ratio = float(text)
    except (TypeError, ValueError):
        raise PersamError(f"the presence must be a ratio in [0, 1] or auto, not {text!r}") from None
    if not 0.0 <= ratio <= 1.0:
        raise PersamError(f"the presence ratio must be in [0, 1] or auto, not {text}")
    return ratio


def otsu_threshold(values: Sequence[float]) -> Optional[float]:
    """The threshold between two groups of ``values`` that maximises the between-group variance
    (Otsu's, over the sorted values themselves: every cut between two neighbours is tried), or None
    when there are fewer than two distinct values or the best split explains less than
    :data:`SEPARATION` of the variance (one group, nothing to split)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if ordered.size < 2 or ordered[0] == ordered[-1]:
        return None
    n = ordered.size
    below = np.arange(1, n)  # the count of values under each cut (after index i-1)
    sums = np.cumsum(ordered)[:-1]
    mean_low = sums / below
    mean_high = (ordered.sum() - sums) / (n - below)
    between = below * (n - below) * (mean_low - mean_high) ** 2 / n ** 2
    cut = int(np.argmax(between))
    if between[cut] < SEPARATION * ordered.var():
        return None
    return float((ordered[cut] + ordered[cut + 1]) / 2)


def decide_presence(rows: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """Summary rows with ``presence_threshold`` set per object (Otsu's over that object's similarities
    in the collection; empty when they form one group) and ``found`` turned to 0 where the photo's
    similarity is under it. Rows without an object (errors, skipped files) pass unchanged."""
    similarities: Dict[str, List[float]] = {}
    for row in rows:
        if row.get("object") not in (None, "") and row.get("similarity") not in (None, ""):
            similarities.setdefault(str(row["object"]), []).append(float(str(row["similarity"])))
    thresholds = {k: otsu_threshold(values) for k, values in similarities.items()}
    decided = []
    for row in rows:
        threshold = thresholds.get(str(row.get("object")))
        row = dict(row)
        if threshold is not None:
            row["presence_threshold"] = f"{threshold:.4f}"
            if float(str(row["similarity"])) < threshold and int(str(row.get("found") or 0)):
                row.update(found=0, score=f"{0.0:.4f}", area=0)
        elif str(row.get("object")) in thresholds:
            row["presence_threshold"] = ""
        decided.append(row)
    return decided
