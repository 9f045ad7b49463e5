"""Interactive video segmentation, modelled on SAM2's video predictor, on a streaming reader.

    session = VideoSession(load_sam("small"), open_frames("clip.mp4"))
    mask = session.add_points(0, 1, [[320, 240]], [1])      # one click: object 1 on frame 0
    session.add_mask(40, 1, corrected)                        # a correction on frame 40
    for result in session.propagate():                        # forward from frame 0, then backward
        ...                                                   # result.labels: (H, W) uint8 ids

Prompts may be given on any frame, for objects that appear mid-video, and as reference images
from outside the clip. :meth:`VideoSession.propagate` seeds every object from all its prompts
(``persam_video.tracking.seeding`` states the rules) and runs the tracker forward from the earliest
prompted frame to the end and backward from it to frame 0; on every prompted frame an object's
mask is its prompt's. Frames are streamed (backward in chunks), so memory stays bounded; only the
prompted frames' image embeddings are kept.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import PersamError
from ..io.frames import FrameSource, frames_backward, prefetch
from ..io.prompts import Prompt, PromptSet, Reference, as_points, check_prompt, check_prompt_set, check_reference
from ..options import TrackerOptions
from .seeding import SeedView
from .segmenter import VideoSegmenter

DIRECTIONS = ("both", "forward", "backward")


@dataclass
class ObjectResult:
    """One object on one frame: SAM's predicted IoU for its mask (1 on a prompted frame, 0 where
    not found) and whether it is on the label map."""

    obj_id: int
    score: float
    found: bool


@dataclass
class FrameResult:
    """One segmented frame: its index and name, the (H, W) uint8 label map and each object's result."""

    index: int
    name: str
    labels: np.ndarray
    objects: List[ObjectResult]


class VideoSession:
    """Prompts on any frame, references, and propagation both ways over one video.

    Clicks on a frame accumulate: calling :meth:`add_points` again for the same frame and object adds
    the new points to the earlier ones (a new box replaces the earlier box) and SAM decodes them all
    again; :meth:`add_mask` replaces an object's clicks on that frame, and clicks replace a mask."""

    def __init__(self, model: torch.nn.Module, source: FrameSource, options: Optional[TrackerOptions] = None):
        self.source = source
        self.options = options or TrackerOptions()
        self.segmenter = VideoSegmenter(model, self.options)
        self._prompts: Dict[Tuple[int, int], Prompt] = {}  # (frame, id) -> clicks/box or mask
        self._masks: Dict[Tuple[int, int], np.ndarray] = {}  # (frame, id) -> the mask the prompt gives
        self._references: List[Tuple[Reference, SeedView]] = []
        self._reference_keys = 0  # names references in the predictor's store of encoded images
        self._position: Optional[dict] = None

    # ------------------------------------------------------------------ prompts
    @property
    def object_ids(self) -> List[int]:
        """Every id prompted or referenced, ascending."""
        return sorted({k for _, k in self._prompts} | {r.obj_id for r, _ in self._references})

    @property
    def prompted_frames(self) -> List[int]:
        """The frames with a prompt, ascending."""
        return sorted({f for f, _ in self._prompts})

    def add_points(self, frame_index: int, obj_id: int, points: Optional[Sequence], labels: Optional[Sequence] = None,
                   box: Optional[Sequence[float]] = None, *, checked: bool = False) -> np.ndarray:
        """Clicks (``points`` (P, 2) x, y pixels; ``labels`` 1 positive / 0 negative, default all 1) and
        optionally a box for ``obj_id`` on ``frame_index``; returns SAM's (H, W) bool mask for all the
        clicks of that frame and object, which seeds the object there as :meth:`add_mask` would.

        One click without a box gives the best of SAM's three masks by predicted IoU; several clicks
        or a box give SAM's single mask (SamPredictor's rule). ``checked``: its set was checked already."""
        key = (int(frame_index), int(obj_id))
        earlier = self._prompts.get(key)
        pts = lab = None
        if points is not None and np.size(points):
            pts, lab = as_points(points, labels)
        if earlier is not None and earlier.mask is None:
            if earlier.points is not None:
                pts = earlier.points if pts is None else np.concatenate((earlier.points, pts))
                lab = earlier.labels if lab is None else np.concatenate((earlier.labels, lab))
            box = earlier.box if box is None else box
        prompt = Prompt(key[0], key[1], pts, lab, None if box is None else np.asarray(box, np.float32).reshape(4))
        if not checked:
            check_prompt(prompt, self.source.size, len(self.source))
        mask = self._decode_clicks(prompt)
        self._prompts[key], self._masks[key] = prompt, mask
        return mask.copy()

    def set_clicks(self, frame_index: int, obj_id: int, points: Optional[Sequence], labels: Optional[Sequence] = None,
                   box: Optional[Sequence[float]] = None) -> Optional[np.ndarray]:
        """Make ``obj_id``'s prompt on ``frame_index`` exactly these clicks and box (none of either: no
        prompt there); returns SAM's mask, or None. An editor's undo and "clear" go through it."""
        key = (int(frame_index), int(obj_id))
        earlier = self._prompts.pop(key, None), self._masks.pop(key, None)
        if (points is None or not np.size(points)) and box is None:
            self._prune()
            return None
        try:
            return self.add_points(frame_index, obj_id, points, labels, box=box)
        except BaseException:
            if earlier[0] is not None:
                self._prompts[key], self._masks[key] = earlier
            raise

    def add_box(self, frame_index: int, obj_id: int, box: Sequence[float]) -> np.ndarray:
        """A box (x0, y0, x1, y1) for ``obj_id`` on ``frame_index`` (with the clicks already there):
        see :meth:`add_points`."""
        return self.add_points(frame_index, obj_id, None, None, box=box)

    def add_mask(self, frame_index: int, obj_id: int, mask: np.ndarray, *, checked: bool = False) -> np.ndarray:
        """``obj_id``'s (H, W) mask on ``frame_index``; replaces its clicks there. Returns it (bool)."""
        prompt = Prompt(int(frame_index), int(obj_id), mask=np.asarray(mask).astype(bool))
        if not checked:
            check_prompt(prompt, self.source.size, len(self.source))
        key = (prompt.frame, prompt.obj_id)
        self._prompts[key], self._masks[key] = prompt, prompt.mask
        return prompt.mask.copy()

    def add_reference(self, image: np.ndarray, obj_id: int, mask: np.ndarray, *, checked: bool = False) -> None:
        """``obj_id`` shown on an image from outside the clip (RGB (H, W, 3), mask (H, W)). Its target
        (and PerSAM-F weights, when it has no prompt in the clip) come from there; in the clip it has
        no box prior until found: each frame is searched whole with the re-detection gate."""
        reference = Reference(int(obj_id), np.asarray(image, dtype=np.uint8), np.asarray(mask).astype(bool))
        if not checked:
            check_reference(reference)
        self._reference_keys += 1
        self._references.append((reference, SeedView({reference.obj_id: reference.mask},
                                                     key=("reference", self._reference_keys), image=reference.image,
                                                     in_clip=False)))

    def add_prompt_set(self, prompt_set: PromptSet) -> None:
        """Add every prompt and reference of ``prompt_set`` (as :func:`persam_video.io.prompts.load_prompts`
        reads them), checked first against the video; clicks on one frame and object accumulate."""
        check_prompt_set(prompt_set, self.source.size, len(self.source))  # the one check; the adds below skip theirs
        for p in prompt_set.prompts:
            if p.mask is not None:
                self.add_mask(p.frame, p.obj_id, p.mask, checked=True)
            else:
                self.add_points(p.frame, p.obj_id, p.points, p.labels, box=p.box, checked=True)
        for r in prompt_set.references:
            self.add_reference(r.image, r.obj_id, r.mask, checked=True)

    def set_options(self, options: TrackerOptions) -> None:
        """Track with ``options`` from the next :meth:`propagate` on (prompts and references are kept)."""
        self.options = options
        self.segmenter.set_options(options)

    def remove_object(self, obj_id: int) -> None:
        """Forget every prompt and reference of ``obj_id``."""
        for key in [key for key in self._prompts if key[1] == obj_id]:
            del self._prompts[key], self._masks[key]
        self._references = [(r, v) for r, v in self._references if r.obj_id != obj_id]
        self._prune()

    def reset(self) -> None:
        """Forget every prompt, reference and result."""
        self._prompts.clear()
        self._masks.clear()
        self._references.clear()
        self.segmenter.clear()
        self._position = None

    def prompt_set(self) -> PromptSet:
        """Everything added so far (clicks as points/box, masks as arrays), to save or replay."""
        prompts = [copy.deepcopy(self._prompts[key]) for key in sorted(self._prompts)]
        return PromptSet(prompts, [copy.deepcopy(r) for r, _ in self._references])

    # ------------------------------------------------------------- propagation
    @property
    def start_frame(self) -> int:
        """Where :meth:`propagate` starts by default: the earliest prompted frame, else 0."""
        return self.prompted_frames[0] if self._prompts else 0

    def propagate(self, direction: str = "both", start: Optional[int] = None,
                  resume: Optional[dict] = None, state: Optional[dict] = None) -> Iterator[FrameResult]:
        """Seed every object from its prompts and references, then yield each frame's result:
        forward from ``start`` (default: the earliest prompted frame, else 0) to the end, then
        (``both``) backward from it to frame 0; ``forward`` / ``backward`` run one of the two.

        ``resume`` (a :meth:`checkpoint` taken after some frame of a run with the same prompts)
        continues that run after that frame instead of seeding again. ``state`` (from
        :func:`persam_video.tracking.object_state.load_state`) supplies fitted targets and weights."""
        if direction not in DIRECTIONS:
            raise PersamError(f"the direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        if not self._prompts and not self._references:
            raise PersamError("no prompt: add points, a box, a mask or a reference first")
        if start is None:
            start = self.start_frame
        if not 0 <= start < len(self.source):
            raise PersamError(f"the start frame {start} is outside the video, which has {len(self.source)} frames "
                              f"(0..{len(self.source) - 1})")
        plan = self._plan(direction, start)
        if resume is None:
            self.prepare(state)
            position = {"direction": direction, "start": start, "pass": 0, "done": 0, "written": 0,
                        "start_state": None, "start_motion": None}
        else:
            self.segmenter.load_track_state(resume["objects"], self.source.size)
            position = {key: resume[key] for key in ("direction", "start", "pass", "done", "written", "start_state")}
            position["start_motion"] = resume.get("start_motion")
        yield from self._run(plan, position)

    def checkpoint(self) -> dict:
        """What :meth:`propagate` needs to continue after the last frame it yielded (tensors on the
        CPU, saved bit-exactly by ``torch.save``)."""
        if self._position is None:
            raise RuntimeError("checkpoint() is taken during propagate()")
        return dict(self._position, objects=self.segmenter.track_state())

    def prepare(self, state: Optional[dict] = None) -> None:
        """Seed the tracker's objects from every prompt and reference (targets, PerSAM-F weights);
        ``state`` (from :func:`persam_video.tracking.object_state.load_state`) supplies them for its objects."""
        views = [SeedView({k: self._masks[(f, k)] for f, k in sorted(self._masks) if f == frame},
                          key=("frame", frame), image=self._reader(frame)) for frame in self.prompted_frames]
        views.extend(view for _, view in self._references)
        loaded = {} if state is None else self.segmenter.check_state(state, self.object_ids)
        self.segmenter.seed(views, self.object_ids, self.source.size, loaded)

    def _plan(self, direction: str, start: int) -> List[Tuple[str, List[int]]]:
        forward = ("forward", list(range(start, len(self.source))))
        if direction == "forward":
            return [forward]
        if direction == "backward":
            return [("backward", list(range(start, -1, -1)))]
        return [forward, ("backward", list(range(start - 1, -1, -1)))]

    def _run(self, plan: List[Tuple[str, List[int]]], position: dict) -> Iterator[FrameResult]:
        seg = self.segmenter
        by_frame: Dict[int, Dict[int, np.ndarray]] = {}
        for (frame, obj_id), mask in self._masks.items():
            by_frame.setdefault(frame, {})[obj_id] = mask
        self._position = position
        for number in range(position["pass"], len(plan)):
            name, frames = plan[number]
            todo = frames[position["done"]:] if number == position["pass"] else frames
            if number != position["pass"] or position["done"] == 0:
                if name == "backward" and position["direction"] == "both":
                    seg.load_places(position["start_state"])  # where the forward pass left its start frame
                    seg.load_motion(position["start_motion"])
                else:
                    seg.unplace()
            if not todo:
                continue
            stream = self.source.frames(todo[0]) if name == "forward" else \
                prefetch(frames_backward(self.source, todo[0]), self.source.read_ahead)
            try:
                for done, frame in enumerate(stream, start=len(frames) - len(todo) + 1):
                    labels = seg.step(frame.image, by_frame.get(frame.index))
                    if name == "forward" and frame.index == position["start"]:
                        position["start_state"] = seg.places()
                        position["start_motion"] = seg.motion_state()
                    position.update({"pass": number, "done": done, "written": position["written"] + 1})
                    yield FrameResult(frame.index, frame.name, labels,
                                      [ObjectResult(k, float(s), found) for k, s, found in seg.results])
            finally:
                stream.close()

    # ------------------------------------------------------------- internals
    def _prune(self) -> None:
        """Drop the image embeddings of frames no longer prompted and of references removed."""
        self.segmenter.keep_images([("frame", f) for f in self.prompted_frames] +
                                   [view.key for _, view in self._references])

    def _reader(self, frame: int) -> Callable[[], np.ndarray]:
        """What reads ``frame``'s pixels when the segmenter's feature store does not hold it."""
        return lambda: self.source.read(frame).image

    def _decode_clicks(self, prompt: Prompt) -> np.ndarray:
        """SAM's mask for a prompt's clicks and box (SamPredictor, multimask for one click alone)."""
        mask = self.segmenter.click_mask(("frame", prompt.frame), self._reader(prompt.frame),
                                         prompt.points, prompt.labels, prompt.box)
        if not mask.any():
            self._prune()
            raise PersamError(f"SAM finds nothing at the prompt of {prompt.describe()}: click inside the object "
                              f"or give a box")
        return mask
