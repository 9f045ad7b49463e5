"""The video tracker: per-object state across frames around the per-frame PerSAM method.

    segmenter = VideoSegmenter(load_sam("small"), TrackerOptions(method="persam-f"))
    segmenter.init(first_frame_rgb, seed_labels)            # seeds (and fits PerSAM-F)
    for index, labels in segmenter.propagate(more_frames):   # streams label maps
        ...

The image encoder runs once per frame for all objects; the decoder runs batched across
objects. State is kept per object id, so an object that vanishes never shifts the others.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from segment_anything import SamPredictor

from . import persam
from .errors import PersamError, check_size
from .masks import atomic_write, object_ids
from .options import TrackerOptions

STATE_VERSION = 1


@dataclass
class ObjectState:
    """What the tracker remembers about one object between frames."""

    obj_id: int
    feature: Optional[torch.Tensor]  # L2-normalised target embedding (C,); None: nothing to track
    mean: Optional[torch.Tensor]  # mean embedding before normalisation (C,)
    reference_similarity: float = 1.0  # top confidence on the seed frame
    reference_quality: float = 0.0  # SAM's predicted IoU for the object on the seed frame
    weights: Optional[torch.Tensor] = None  # PerSAM-F scale weights (2,)
    box: Optional[np.ndarray] = None  # widened box of the last mask (x0, y0, x1, y1)
    interior: Optional[np.ndarray] = None  # the last mask's most interior pixel (x, y)
    missing: int = 0  # frames since the object was last seen


@dataclass
class Timings:
    """Seconds spent per stage, summed over frames."""

    frames: int = 0
    encoder: float = 0.0
    decoder: float = 0.0
    fit: float = 0.0


class VideoSegmenter:
    """PerSAM / PerSAM-F over a video: seed once with :meth:`init`, then :meth:`step` per frame."""

    def __init__(self, model: torch.nn.Module, options: Optional[TrackerOptions] = None):
        self.model = model
        self.options = options or TrackerOptions()
        self.predictor = SamPredictor(model)
        self.objects: List[ObjectState] = []
        self.timings = Timings()
        self._frame_size: Optional[Tuple[int, int]] = None

    # ------------------------------------------------------------------ seeding
    def init(self, image: np.ndarray, seed: np.ndarray, ids: Optional[Sequence[int]] = None,
             state: Optional[dict] = None) -> np.ndarray:
        """Seed the objects from ``seed`` (an (H, W) label map) on ``image`` (RGB uint8).

        ``ids`` picks objects (default: every id in the seed). ``state`` (from
        :meth:`state_dict`) supplies fitted targets and weights instead of computing them.
        Returns the seed label map restricted to the tracked objects (the start frame's output).
        """
        check_size("seed mask", seed.shape, image.shape, "the frame is")
        ids = list(ids) if ids is not None else object_ids(seed)
        if not ids:
            raise PersamError("the seed mask has no object")
        loaded = self._check_state(state, ids) if state is not None else {}
        self._frame_size = seed.shape
        self._encode(image)
        h, w = seed.shape
        self.objects = []
        for k in ids:
            mask = seed == k
            box = persam.tight_box(mask)
            if k in loaded:
                record = loaded[k]
                obj = ObjectState(k, record["feature"].to(self.device), record["mean"].to(self.device),
                                  reference_similarity=float(record["reference_similarity"]),
                                  weights=None if record.get("weights") is None else record["weights"].to(self.device))
            elif box is None:
                warnings.warn(f"object {k} is empty in the seed mask: it will not be tracked")
                obj = ObjectState(k, None, None)
            else:
                target = persam.target_embedding(self.predictor, mask, self.options.target_mode)
                obj = ObjectState(k, target.feature, target.mean)
            obj.box = None if box is None else persam.widen_box(box, self.options.margin, h, w)
            if self.options.anchor == "interior":
                obj.interior = persam.interior_point(mask)
            self.objects.append(obj)
        tracked = [o for o in self.objects if o.feature is not None]
        if tracked:
            maps = persam.confidence_maps(self.predictor, torch.stack([o.feature for o in tracked]))
            for obj, sim in zip(tracked, maps):
                if obj.obj_id not in loaded:
                    inside = torch.as_tensor(seed == obj.obj_id, device=sim.device)
                    obj.reference_similarity = float(sim[inside].max()) if bool(inside.any()) else float(sim.max())
            if self.options.method == "persam-f":
                self._fit(tracked, maps, seed)
            if self.options.quality_gate > 0:
                self._reference_quality([i for i, o in enumerate(self.objects) if o.feature is not None], maps)
        return np.where(np.isin(seed, ids), seed, 0).astype(np.uint8)

    @torch.no_grad()
    def _reference_quality(self, tracked_rows: List[int], maps: torch.Tensor) -> None:
        """The quality gate's reference: each object (``tracked_rows``: indices into
        ``self.objects``, one per row of ``maps``) decoded on its own seed frame as a later frame
        would be (the seed's box prior), and SAM's predicted IoU for the result."""
        boxed = [j for j, i in enumerate(tracked_rows) if self.objects[i].box is not None]
        if boxed:
            start = time.perf_counter()
            rows = [tracked_rows[j] for j in boxed]
            scores = self._decode(rows, maps[boxed], with_box=True, gate=False).scores
            for i, score in zip(rows, scores.tolist()):
                self.objects[i].reference_quality = score
            self.timings.decoder += time.perf_counter() - start

    def _fit(self, tracked: List[ObjectState], maps: torch.Tensor, seed: np.ndarray) -> None:
        """Fit PerSAM-F weights for objects (``tracked``, one per row of ``maps``) that have a
        seed box and no loaded weights."""
        todo = [(i, o) for i, o in enumerate(tracked) if o.weights is None and o.box is not None]
        if not todo:
            return
        start = time.perf_counter()
        rows = [i for i, _ in todo]
        points = persam.top_points(maps[rows], 1)
        centres = torch.as_tensor(np.stack([self._anchor(o) for _, o in todo]), device=self.device)
        prompts = persam.Prompts(
            points=torch.cat((points, centres[:, None]), dim=1),
            labels=torch.ones(len(todo), 2, device=self.device),
            boxes=torch.as_tensor(np.stack([o.box for _, o in todo]), dtype=torch.float32, device=self.device))
        with torch.no_grad():
            logits = persam.predict(self.predictor, prompts).logits
        target = torch.stack([torch.as_tensor(seed == o.obj_id, device=self.device) for _, o in todo])
        with torch.enable_grad():
            weights = persam.fit_scale_weights(logits, target, self.options.fit_iterations, self.options.fit_lr)
        for (_, obj), w in zip(todo, weights):
            obj.weights = w
        self.timings.fit += time.perf_counter() - start

    # --------------------------------------------------------------- per frame
    @torch.no_grad()
    def step(self, image: np.ndarray) -> np.ndarray:
        """Segment every object on the next frame; returns the (H, W) uint8 label map."""
        if self._frame_size is None:
            raise RuntimeError("call init() before step()")
        check_size("frame", image.shape, self._frame_size, "the video started at")
        self._encode(image)
        t_dec = time.perf_counter()
        logits = torch.full((len(self.objects),) + tuple(self._frame_size), float("-inf"), device=self.device)
        tracked_rows = [i for i, o in enumerate(self.objects) if o.feature is not None]
        if tracked_rows:
            maps = persam.confidence_maps(self.predictor,
                                          torch.stack([self.objects[i].feature for i in tracked_rows]))
            boxed = [j for j, i in enumerate(tracked_rows) if self.objects[i].box is not None]
            searching = [j for j, i in enumerate(tracked_rows) if self.objects[i].box is None]
            for group, with_box in ((boxed, True), (searching, False)):
                if group:
                    rows = [tracked_rows[j] for j in group]
                    logits[rows] = self._decode(rows, maps[group], with_box).logits
        labels = persam.label_map(logits, [o.obj_id for o in self.objects]) if self.objects else \
            np.zeros(self._frame_size, np.uint8)
        self._update_boxes(labels)
        self.timings.decoder += time.perf_counter() - t_dec
        self.timings.frames += 1
        return labels

    def propagate(self, frames: Iterable) -> Iterator[Tuple[int, np.ndarray]]:
        """Yield ``(frame_index, label_map)`` for each frame as it arrives.

        ``frames`` yields RGB arrays or objects with ``index`` and ``image`` attributes
        (such as :class:`persam_video.frames.Frame`).
        """
        for position, frame in enumerate(frames):
            image = getattr(frame, "image", frame)
            index = getattr(frame, "index", position)
            yield index, self.step(image)

    # ------------------------------------------------------------- internals
    @property
    def device(self) -> torch.device:
        return self.predictor.device

    def _encode(self, image: np.ndarray) -> None:
        start = time.perf_counter()
        self.predictor.set_image(image)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.timings.encoder += time.perf_counter() - start

    def _decode(self, rows: List[int], maps: torch.Tensor, with_box: bool, gate: bool = True) -> persam.CascadeResult:
        """Decode the objects ``rows`` together; with ``gate``, objects that fail the
        re-detection or quality gate get ``-inf`` logits (not found)."""
        objs = [self.objects[i] for i in rows]
        opts = self.options
        points = [persam.top_points(maps, opts.topk)]
        if with_box:
            centres = np.stack([self._anchor(o) for o in objs])
            points.append(torch.as_tensor(centres, device=self.device)[:, None])
        n_pos = sum(p.shape[1] for p in points)
        labels = [torch.ones(len(objs), n_pos, device=self.device)]
        if opts.negative_point:
            points.append(persam.lowest_point(maps))
            labels.append(torch.zeros(len(objs), 1, device=self.device))
        boxes = None
        if with_box:
            boxes = torch.as_tensor(np.stack([o.box for o in objs]), dtype=torch.float32, device=self.device)
        prompts = persam.Prompts(torch.cat(points, dim=1), torch.cat(labels, dim=1), boxes)
        switches = persam.Switches(opts.guided_attention, opts.semantic_prompt)
        means = torch.stack([o.mean for o in objs]) if opts.semantic_prompt else None
        if opts.method == "persam-f":
            weights = torch.stack([o.weights if o.weights is not None
                                   else torch.full((2,), 1 / 3, device=self.device) for o in objs])
            result = persam.decode_persam_f(self.predictor, prompts, weights, switches, maps, means,
                                            clip_to_box=opts.box_clip)
        else:
            result = persam.decode_persam(self.predictor, prompts, switches, maps, means, clip_to_box=opts.box_clip)
        if not gate:
            return result
        rejected = torch.zeros(len(objs), dtype=torch.bool, device=self.device)
        if not with_box:
            # re-detection: accept only where the target is clearly there
            top = maps.flatten(1).max(dim=1).values
            needed = torch.tensor([o.reference_similarity * opts.redetect_ratio for o in objs], device=self.device)
            rejected |= top < needed
        if opts.quality_gate > 0:
            needed = torch.tensor([o.reference_quality * opts.quality_gate for o in objs], device=self.device)
            rejected |= result.scores < needed
        result.logits[rejected] = float("-inf")
        return persam.CascadeResult(result.logits, result.found & ~rejected, result.scores)

    def _anchor(self, obj: ObjectState) -> np.ndarray:
        """The extra positive point of a boxed object (see ``TrackerOptions.anchor``)."""
        if self.options.anchor == "interior" and obj.interior is not None:
            return obj.interior
        return persam.box_centre(obj.box)

    def _update_boxes(self, labels: np.ndarray) -> None:
        """Each object's next box prior from this frame's label map (kept a while if it vanished)."""
        if not self.objects:
            return
        h, w = labels.shape
        label_t = torch.as_tensor(labels, device=self.device)
        ids = torch.as_tensor([o.obj_id for o in self.objects], device=self.device, dtype=label_t.dtype)
        masks = label_t[None] == ids[:, None, None]
        boxes = persam.tight_boxes(masks)
        for obj, box, mask in zip(self.objects, boxes, masks):
            if box is not None:
                widened = persam.widen_box(box, self.options.margin, h, w)
                refused = False
                if self.options.box_growth and obj.box is not None and obj.missing == 0:
                    limited = persam.limit_box_growth(widened, obj.box, self.options.box_growth)
                    refused = limited is not widened  # then the last prompt, anchor included, is kept
                    widened = limited
                obj.box = widened
                if self.options.anchor == "interior" and not refused:
                    obj.interior = persam.interior_point(mask.cpu().numpy())
                obj.missing = 0
            else:
                obj.missing += 1
                if obj.missing > self.options.keep_box_frames:
                    obj.box = None

    # ------------------------------------------------------------- state I/O
    def state_dict(self) -> dict:
        """The fitted per-object state (targets, weights), to save and reuse on another run."""
        return {
            "version": STATE_VERSION,
            "method": self.options.method,
            "options": asdict(self.options),
            "embedding_dim": int(self.predictor.features.shape[1]) if self.predictor.is_image_set else None,
            "objects": {
                o.obj_id: {"feature": o.feature.cpu(), "mean": o.mean.cpu(),
                           "reference_similarity": o.reference_similarity,
                           "weights": None if o.weights is None else o.weights.cpu()}
                for o in self.objects if o.feature is not None},
        }

    def _check_state(self, state: dict, ids: Sequence[int]) -> Dict[int, dict]:
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "objects" not in state:
            raise PersamError("not a persam-video state file (or from an incompatible version)")
        objects = {int(k): v for k, v in state["objects"].items()}
        dim = self.model.mask_decoder.transformer_dim
        for k, record in objects.items():
            if record["feature"].shape[0] != dim:
                raise PersamError(f"state for object {k} has {record['feature'].shape[0]}-d embeddings, "
                                  f"but this model's are {dim}-d: it was saved with another model type")
        unknown = sorted(set(ids) - set(objects))
        if unknown and len(unknown) == len(ids):
            raise PersamError(f"the state file has no object among {','.join(map(str, ids))} "
                              f"(it holds {','.join(map(str, sorted(objects)))})")
        return {k: v for k, v in objects.items() if k in ids}


def save_state(segmenter: VideoSegmenter, path: Union[str, Path]) -> None:
    """Write the segmenter's fitted state to ``path`` atomically."""
    state = segmenter.state_dict()
    try:
        atomic_write(path, lambda tmp: torch.save(state, tmp))
    except OSError as exc:
        raise PersamError(f"cannot write state file {path}: {exc.strerror or exc}") from None


def load_state(path: Union[str, Path]) -> dict:
    """Read a state file written by :func:`save_state`."""
    path = Path(path)
    if not path.is_file():
        raise PersamError(f"state file not found: {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PersamError(f"cannot read state file {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
