"""The video tracker: per-object state across frames around the per-frame PerSAM method.

    segmenter = VideoSegmenter(load_sam("small"), TrackerOptions(method="persam-f"))
    segmenter.seed_frame(first_frame_rgb, seed_labels)       # seeds (and fits PerSAM-F)
    for index, labels in segmenter.propagate(more_frames):   # streams label maps
        ...

The image encoder runs once per frame for all objects; the decoder runs batched across
objects. State is kept per object id, so an object that vanishes never shifts the others. The
segmenter owns its objects, its options and its feature store (prompted frames and references,
encoded once); seeding and decoding are functions it calls and that never call it back.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Dict, Hashable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import persam
from ..errors import PersamError, check_size
from ..io.masks import object_ids
from ..model.features import Features, FeatureStore
from ..model.predictor import FramePredictor
from ..options import TrackerOptions
from .decode_objects import decode_objects
from .follow import follow, guard_leaks
from .motion import MotionPrior
from .object_state import STATE_VERSION, ObjectState, Timings
from .seeding import Seeding, SeedView, seed_objects
from .target_memory import keep_targets, object_maps

STORE_CAPACITY = 32  # prompted frames and references kept encoded (the least recently used dropped)


class VideoSegmenter:
    """PerSAM / PerSAM-F over a video: seed once with :meth:`seed_frame` (or :meth:`seed`), then
    :meth:`step` per frame."""

    def __init__(self, model: torch.nn.Module, options: Optional[TrackerOptions] = None):
        self.model = model
        self.options = options or TrackerOptions()
        self.predictor = FramePredictor(model)
        self.store = FeatureStore(self._encode, STORE_CAPACITY)
        self.objects: List[ObjectState] = []
        self.timings = Timings()
        self.results: List[Tuple[int, float, bool]] = []
        self._frame_size: Optional[Tuple[int, int]] = None
        self.motion: Optional[MotionPrior] = None  # the last frame, with ``propagation="flow"``

    # ------------------------------------------------------------------ seeding
    def seed_frame(self, image: np.ndarray, seed: np.ndarray, ids: Optional[Sequence[int]] = None,
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
        self._set_frame_size(seed.shape)
        self._seed([SeedView({k: seed == k for k in ids}, key=("init",), image=image)], ids, loaded)
        self.store.retain()
        labels = np.where(np.isin(seed, ids), seed, 0).astype(np.uint8)
        self.place(labels, ids)
        if self.motion is not None:
            self.motion.remember(self.motion.grey(image), labels)
        return labels

    def seed(self, views: Sequence[SeedView], ids: Sequence[int], frame_size: Tuple[int, int],
             loaded: Optional[Dict[int, dict]] = None) -> None:
        """Seed the objects ``ids`` from their masks on ``views`` (prompted frames of a clip of
        ``frame_size`` frames, reference images): see :mod:`persam_video.tracking.seeding` for the rules;
        ``loaded`` (from :meth:`check_state`) supplies some objects' targets and weights.
        No object has a box prior afterwards: :meth:`step` places them on their prompted frames."""
        self._set_frame_size(frame_size)
        self._seed(views, ids, loaded or {})

    def _set_frame_size(self, size: Tuple[int, int]) -> None:
        """The clip's frame size, and a fresh motion prior for it with ``propagation="flow"``."""
        self._frame_size = tuple(size)
        self.motion = MotionPrior(self._frame_size) if self.options.propagation == "flow" else None

    def _seed(self, views: Sequence[SeedView], ids: Sequence[int], loaded: Dict[int, dict]) -> None:
        seeding = Seeding(self.predictor, self.store, self.options, flow=self.motion is not None)
        objects, spent = seed_objects(seeding, views, ids, loaded)
        self.objects = objects
        self.timings.fit += spent.fit
        self.timings.decoder += spent.decoder

    def set_options(self, options: TrackerOptions) -> None:
        """Track with ``options`` from the next seeding on."""
        self.options = options

    def clear(self) -> None:
        """Forget every object and every stored image."""
        self.objects = []
        self.store.retain()

    def keep_images(self, keys: Iterable[Hashable]) -> None:
        """Drop every stored image but those of ``keys``."""
        self.store.retain(keys)

    def click_mask(self, key: Hashable, image, points: Optional[np.ndarray], labels: Optional[np.ndarray],
                   box: Optional[np.ndarray] = None) -> np.ndarray:
        """SAM's mask for clicks and a box on the image ``key`` (encoded once, through the store;
        ``image`` as :meth:`FeatureStore.get` takes it)."""
        self.predictor.use(self.store.get(key, image))
        return self.predictor.click_mask(points, labels, box)

    def place(self, labels: np.ndarray, ids: Sequence[int]) -> None:
        """Set the objects ``ids`` where ``labels`` has them, as a prompt does: their box prior and
        anchor from their mask there, nothing missing."""
        wanted = set(ids)
        for obj in self.objects:
            if obj.obj_id in wanted:
                obj.place(labels == obj.obj_id, self.options)

    def unplace(self) -> None:
        """Forget where every object was (no box priors): the state before a pass's first prompt."""
        for obj in self.objects:
            obj.unplace()
        if self.motion is not None:
            self.motion.forget()

    # --------------------------------------------------------------- per frame
    @torch.no_grad()
    def step(self, image: np.ndarray, prompts: Optional[Dict[int, np.ndarray]] = None) -> np.ndarray:
        """Segment every object on the next frame; returns the (H, W) uint8 label map.

        ``prompts`` (id -> (H, W) bool) are the masks given for this frame: those objects are not
        decoded, their mask is the given one (drawn in ascending id order over the others) and
        their box prior restarts from it. ``results`` then holds each object's id, score and
        whether it is on the label map."""
        if self._frame_size is None:
            raise RuntimeError("call seed_frame() or seed() before step()")
        check_size("frame", image.shape, self._frame_size, "the video started at")
        prompts = prompts or {}
        tracked_rows = [i for i, o in enumerate(self.objects) if o.feature is not None and o.obj_id not in prompts]
        if tracked_rows or not prompts:
            self.encode(image)
        t_dec = time.perf_counter()
        grey = carried = None
        if self.motion is not None:
            grey = self.motion.grey(image)
            carried = self.motion.carry(grey)
            if carried is not None:
                follow(self.objects, carried, self.options.margin, skip=prompts)
        logits = torch.full((len(self.objects),) + tuple(self._frame_size), float("-inf"), device=self.device)
        scores = torch.zeros(len(self.objects), device=self.device)
        if tracked_rows:
            maps = object_maps(self.predictor, [self.objects[i] for i in tracked_rows])
            boxed = [j for j, i in enumerate(tracked_rows) if self.objects[i].box is not None]
            searching = [j for j, i in enumerate(tracked_rows) if self.objects[i].box is None]
            for group, with_box in ((boxed, True), (searching, False)):
                if group:
                    rows = [tracked_rows[j] for j in group]
                    result = self.decode([self.objects[i] for i in rows], maps[group], with_box)
                    logits[rows] = result.logits
                    scores[rows] = result.scores.to(scores.dtype)
        labels = persam.label_map(logits, [o.obj_id for o in self.objects]) if self.objects else \
            np.zeros(self._frame_size, np.uint8)
        if self.options.leak_guard and carried is not None:
            labels = guard_leaks(labels, carried, [self.objects[i].obj_id for i in tracked_rows],
                                 self.options.leak_guard)
        for k in sorted(prompts):
            labels[prompts[k]] = k
        self._update_boxes(labels, skip=prompts)
        self.place(labels, list(prompts))
        self._record(labels, scores.tolist(), prompts)
        if self.options.target_memory and tracked_rows:
            keep_targets(self.predictor, [self.objects[i] for i in tracked_rows], labels,
                         [self.results[i][1] for i in tracked_rows], self.options)
        if self.motion is not None:
            self.motion.remember(grey, labels)
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
        (such as :class:`persam_video.io.frames.Frame`).
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
        """Run the image encoder on ``image`` (RGB uint8), making it the current image, and count its time."""
        self._encode(image)

    def _encode(self, image: np.ndarray) -> Features:
        start = time.perf_counter()
        features = self.predictor.encode(image)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.timings.encoder += time.perf_counter() - start
        return features

    def decode(self, objs: List[ObjectState], maps: torch.Tensor, with_box: bool) -> persam.CascadeResult:
        """Decode the objects ``objs`` together on the current frame, gated (:func:`decode_objects`)."""
        return decode_objects(self.predictor, objs, maps, with_box, self.options,
                              self.objects if self.motion is not None else None)

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
        return {o.obj_id: o.place_record() for o in self.objects}

    def load_places(self, places: Dict[int, dict]) -> None:
        """Put back what :meth:`places` gave."""
        for obj in self.objects:
            obj.load_place(places[obj.obj_id])

    def motion_state(self) -> Optional[dict]:
        """The motion prior's last frame as tensors (what ``torch.load(weights_only=True)`` reads back);
        None without ``propagation="flow"`` or before a frame."""
        state = None if self.motion is None else self.motion.state()
        return None if state is None else {key: torch.from_numpy(value) for key, value in state.items()}

    def load_motion(self, state: Optional[dict]) -> None:
        """Put back what :meth:`motion_state` gave."""
        if self.motion is not None:
            self.motion.load(None if state is None else {key: value.numpy() for key, value in state.items()})

    def track_state(self) -> dict:
        """Everything the tracker needs to go on from here: each object's record
        (:meth:`ObjectState.record`) and the motion prior's last frame. :meth:`load_track_state`
        restores it bit for bit."""
        return {"frame_size": list(self._frame_size) if self._frame_size else None, "motion": self.motion_state(),
                "objects": [o.record() for o in self.objects]}

    def load_track_state(self, state: dict, frame_size: Tuple[int, int]) -> None:
        """Restore a :meth:`track_state` for a video of ``frame_size`` (height, width)."""
        self._set_frame_size(frame_size)
        self.objects = [ObjectState.from_record(r, self.device) for r in state["objects"]]
        self.load_motion(state.get("motion"))

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

