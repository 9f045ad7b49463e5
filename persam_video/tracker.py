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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import persam
from .errors import PersamError, check_size
from .frame_predictor import FramePredictor
from .masks import atomic_write, object_ids
from .options import TrackerOptions
from .seeding import SeedView, seed_objects

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
        self.predictor = FramePredictor(model)
        self.objects: List[ObjectState] = []
        self.timings = Timings()
        self.results: List[Tuple[int, float, bool]] = []
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
        loaded = self.check_state(state, ids) if state is not None else {}
        self._frame_size = seed.shape
        seed_objects(self, [SeedView({k: seed == k for k in ids}, image=image)], ids, loaded)
        labels = np.where(np.isin(seed, ids), seed, 0).astype(np.uint8)
        self.place(labels, ids)
        return labels

    def seed(self, views: Sequence[SeedView], ids: Sequence[int], frame_size: Tuple[int, int],
             loaded: Optional[Dict[int, dict]] = None) -> None:
        """Seed the objects ``ids`` from their masks on ``views`` (prompted frames of a clip of
        ``frame_size`` frames, reference images): see :mod:`persam_video.seeding` for the rules;
        ``loaded`` (from :meth:`check_state`) supplies some objects' targets and weights.
        No object has a box prior afterwards: :meth:`step` places them on their prompted frames."""
        self._frame_size = tuple(frame_size)
        seed_objects(self, views, ids, loaded or {})

    def place(self, labels: np.ndarray, ids: Sequence[int]) -> None:
        """Set the objects ``ids`` where ``labels`` has them, as a prompt does: their box prior and
        anchor from their mask there, nothing missing."""
        h, w = labels.shape
        wanted = set(ids)
        for obj in self.objects:
            if obj.obj_id in wanted:
                mask = labels == obj.obj_id
                box = persam.tight_box(mask)
                obj.box = None if box is None else persam.widen_box(box, self.options.margin, h, w)
                if self.options.anchor == "interior":
                    obj.interior = persam.interior_point(mask)
                obj.missing = 0

    def unplace(self) -> None:
        """Forget where every object was (no box priors): the state before a pass's first prompt."""
        for obj in self.objects:
            obj.box, obj.interior, obj.missing = None, None, 0

    # --------------------------------------------------------------- per frame
    @torch.no_grad()
    def step(self, image: np.ndarray, prompts: Optional[Dict[int, np.ndarray]] = None) -> np.ndarray:
        """Segment every object on the next frame; returns the (H, W) uint8 label map.

        ``prompts`` (id -> (H, W) bool) are the masks given for this frame: those objects are not
        decoded, their mask is the given one (drawn in ascending id order over the others) and
        their box prior restarts from it. ``results`` then holds each object's id, score and
        whether it is on the label map."""
        if self._frame_size is None:
            raise RuntimeError("call init() before step()")
        check_size("frame", image.shape, self._frame_size, "the video started at")
        prompts = prompts or {}
        tracked_rows = [i for i, o in enumerate(self.objects) if o.feature is not None and o.obj_id not in prompts]
        if tracked_rows or not prompts:
            self.encode(image)
        t_dec = time.perf_counter()
        logits = torch.full((len(self.objects),) + tuple(self._frame_size), float("-inf"), device=self.device)
        scores = torch.zeros(len(self.objects), device=self.device)
        if tracked_rows:
            maps = persam.confidence_maps(self.predictor,
                                          torch.stack([self.objects[i].feature for i in tracked_rows]))
            boxed = [j for j, i in enumerate(tracked_rows) if self.objects[i].box is not None]
            searching = [j for j, i in enumerate(tracked_rows) if self.objects[i].box is None]
            for group, with_box in ((boxed, True), (searching, False)):
                if group:
                    rows = [tracked_rows[j] for j in group]
                    result = self.decode(rows, maps[group], with_box)
                    logits[rows] = result.logits
                    scores[rows] = result.scores.to(scores.dtype)
        labels = persam.label_map(logits, [o.obj_id for o in self.objects]) if self.objects else \
            np.zeros(self._frame_size, np.uint8)
        for k in sorted(prompts):
            labels[prompts[k]] = k
        self._update_boxes(labels, skip=prompts)
        self.place(labels, list(prompts))
        self._record(labels, scores.tolist(), prompts)
        self.timings.decoder += time.perf_counter() - t_dec
        self.timings.frames += 1
        return labels

    def _record(self, labels: np.ndarray, scores: List[float], prompts: Dict[int, np.ndarray]) -> None:
        """``results``: (id, score, found) per object; a prompted object scores 1."""
        counts = np.bincount(labels.ravel(), minlength=256)
        self.results = [(o.obj_id, 1.0 if o.obj_id in prompts else (s if counts[o.obj_id] else 0.0),
                         bool(counts[o.obj_id])) for o, s in zip(self.objects, scores)]

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

    def encode(self, image: np.ndarray) -> None:
        """Run the image encoder on ``image`` (RGB uint8) and count its time."""
        start = time.perf_counter()
        self.predictor.set_image(image)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.timings.encoder += time.perf_counter() - start

    def decode(self, rows: List[int], maps: torch.Tensor, with_box: bool, gate: bool = True) -> persam.CascadeResult:
        """Decode the objects ``rows`` together; with ``gate``, objects that fail the
        re-detection or quality gate get ``-inf`` logits (not found)."""
        objs = [self.objects[i] for i in rows]
        opts = self.options
        points = [persam.top_points(maps, opts.topk)]
        if with_box:
            centres = np.stack([self.anchor(o) for o in objs])
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

    def anchor(self, obj: ObjectState) -> np.ndarray:
        """The extra positive point of a boxed object (see ``TrackerOptions.anchor``)."""
        if self.options.anchor == "interior" and obj.interior is not None:
            return obj.interior
        return persam.box_centre(obj.box)

    def _update_boxes(self, labels: np.ndarray, skip: Iterable[int] = ()) -> None:
        """Each object's next box prior from this frame's label map (kept a while if it vanished);
        objects in ``skip`` are left as they are."""
        skip = set(skip)
        objects = [o for o in self.objects if o.obj_id not in skip]
        if not objects:
            return
        h, w = labels.shape
        label_t = torch.as_tensor(labels, device=self.device)
        ids = torch.as_tensor([o.obj_id for o in objects], device=self.device, dtype=label_t.dtype)
        masks = label_t[None] == ids[:, None, None]
        boxes = persam.tight_boxes(masks)
        for obj, box, mask in zip(objects, boxes, masks):
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
    def places(self) -> Dict[int, dict]:
        """Where each object is (box prior, anchor, frames missing): the state that changes per frame."""
        return {o.obj_id: {"box": None if o.box is None else [int(v) for v in o.box],
                           "interior": None if o.interior is None else [float(v) for v in o.interior],
                           "missing": o.missing} for o in self.objects}

    def load_places(self, places: Dict[int, dict]) -> None:
        """Put back what :meth:`places` gave."""
        for obj in self.objects:
            record = places[obj.obj_id]
            obj.box = None if record["box"] is None else np.array(record["box"], dtype=np.int64)
            obj.interior = None if record["interior"] is None else np.array(record["interior"], dtype=np.float32)
            obj.missing = int(record["missing"])

    def track_state(self) -> dict:
        """Everything the tracker needs to go on from here, per object: the fitted state (tensors
        on the CPU) and :meth:`places`. :meth:`load_track_state` restores it bit for bit."""
        places = self.places()
        return {"frame_size": list(self._frame_size) if self._frame_size else None, "objects": [
            {"obj_id": o.obj_id, "feature": None if o.feature is None else o.feature.cpu(),
             "mean": None if o.mean is None else o.mean.cpu(), "weights": None if o.weights is None else o.weights.cpu(),
             "reference_similarity": o.reference_similarity, "reference_quality": o.reference_quality,
             **places[o.obj_id]} for o in self.objects]}

    def load_track_state(self, state: dict, frame_size: Tuple[int, int]) -> None:
        """Restore a :meth:`track_state` for a video of ``frame_size`` (height, width)."""
        def device(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if t is None else t.to(self.device)

        self._frame_size = tuple(frame_size)
        self.objects = [ObjectState(r["obj_id"], device(r["feature"]), device(r["mean"]),
                                    reference_similarity=r["reference_similarity"],
                                    reference_quality=r["reference_quality"], weights=device(r["weights"]))
                        for r in state["objects"]]
        self.load_places({r["obj_id"]: r for r in state["objects"]})

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

    def check_state(self, state: dict, ids: Sequence[int]) -> Dict[int, dict]:
        """The records of a :meth:`state_dict` for ``ids``; a one-line PersamError for a state of another model."""
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
