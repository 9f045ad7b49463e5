"""One browser session: its folder and video, kept in step with its objects' prompts, the frames'
label maps and the Track run.

Every browser session gets a :class:`BrowserSession` with a private folder; the uploaded video,
the page's frames, the label PNGs and the downloads all live there and nowhere else. The objects
and their clicks are :class:`~.object_prompts.ObjectPrompts`, the label PNGs
:class:`~.label_maps.LabelMaps`; this module keeps them, the prompting session and the undo
history in step under one lock. The
clicks go to the library's prompting session (:class:`persam_video.tracking.session.VideoSession`),
which decodes the object's mask on that frame; the label PNG of that frame is updated at once,
so the page shows the mask right after the click. Track runs the session's ``propagate`` in the
background (:mod:`.tracking`).

Rules chosen here:

* a click or a box on a frame adds to that object's prompts on that frame (the clicks
  accumulate, as in SAM2); the frame's label map takes the object's new mask over any other
  object's pixels;
* Track always runs the whole clip: the prompting session seeds every object from all its
  prompts (a correction included) and propagates forward from the earliest prompted frame, then
  backward; on every prompted frame an object's mask is its prompt's. Re-running only forward
  from a correction scored worse on the demo clip (docs/ui.md): the session starts the objects
  not prompted on that frame without a box and searches the whole frame for them;
* loading a video starts afresh (prompts, masks and Track results go) and, when the list of
  objects is empty, adds "object 1".
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from ..io.writer import LabelWriter
from ..options import TrackerOptions
from .history import Edit, History, Side
from .label_maps import LabelMaps
from .object_prompts import ObjectPrompts
from .photos import PhotoWorkspace
from .tracking import TrackJob, with_motion
from .video import LoadedVideo, UiError, load_video


class BrowserSession:
    """The state of one browser session; every public method takes the session's lock."""

    def __init__(self, sid: str, folder: Path, model, options: TrackerOptions, model_lock: threading.Lock,
                 session_class: Optional[Callable] = None):
        self.id = sid
        self.session_class = session_class  # VideoSession(model, source, options); None: the library's
        self.folder = folder
        self.model = model
        self.options = options
        self.model_lock = model_lock
        self.lock = threading.RLock()
        self.photos = PhotoWorkspace(model, model_lock)  # the photo mode (/photos) of this browser session
        self.last_seen = time.monotonic()
        self.video: Optional[LoadedVideo] = None
        self.video_session = None  # persam_video.tracking.session.VideoSession for the loaded video
        self.prompts = ObjectPrompts()
        self.label_maps: Optional[LabelMaps] = None  # the loaded video's
        self.job: Optional[TrackJob] = None
        self.tracked = False  # a Track has completed: every frame has a label map
        self.changed_from: Optional[int] = None  # the earliest frame prompted since the last completed Track
        self.version = 0  # bumped whenever a frame's picture may change
        self.history = History()  # the prompts' undo and redo
        self.track_note = ""  # what the latest Track left out (objects without a prompt)
        self._loads = 0
        self.videos_opened = 0  # names the loaded video for the page (a new one starts at frame 0)

    # ----------------------------------------------------------------- helpers
    def touch(self) -> None:
        """Note that the page is still there."""
        self.last_seen = time.monotonic()

    @property
    def busy(self) -> bool:
        """Whether a Track is running."""
        return self.job is not None and self.job.running

    def _idle(self) -> None:
        if self.busy:
            raise UiError("Track is running: wait for it or cancel it first", status=409)

    def _need_video(self) -> LoadedVideo:
        if self.video is None:
            raise UiError("load a video first")
        return self.video

    def check_frame(self, frame: int) -> int:
        video = self._need_video()
        if not 0 <= frame < len(video):
            raise UiError(f"frame {frame} is outside the video (0 to {len(video) - 1})")
        return frame

    def _maps(self) -> LabelMaps:
        self._need_video()
        return self.label_maps

    @property
    def labels_dir(self) -> Path:
        """Where this video's label PNGs are (one per frame, named like the frames)."""
        return self._maps().folder

    def labels(self, frame: int) -> Optional[np.ndarray]:
        """The current label map of ``frame``, or None when it has none yet."""
        return self._maps().read(frame)

    # ------------------------------------------------------------------- video
    def video_folder(self) -> Path:
        """A fresh folder for the next video (an upload is saved there before :meth:`open_video`)."""
        with self.lock:
            self._idle()
            self._loads += 1
            folder = self.folder / f"video-{self._loads}"
            folder.mkdir(parents=True)
            return folder

    def open_video(self, path: Path, name: str, where: Optional[Path] = None) -> None:
        """Load the video at ``path`` (a file the server wrote or was given), replacing any other.

        ``where`` is the folder from :meth:`video_folder` (a fresh one by default); it holds the
        page's frames and the label PNGs, and is removed if the video cannot be loaded.
        """
        with self.lock:
            where = where or self.video_folder()
            self._idle()
            try:
                video = load_video(path, name, where / "frames")
                tracker = (self.session_class or _video_session())(self.model, video.source, self.options)
            except BaseException:
                shutil.rmtree(where, ignore_errors=True)
                raise
            old = self.video
            self.video, self.video_session, self.job = video, tracker, None
            self.label_maps = LabelMaps(where / "labels", video.names, video.size)
            self.prompts.marks, self.tracked, self.changed_from, self.track_note = {}, False, None, ""
            self.history.clear()
            self.version += 1
            self.videos_opened += 1
            if old is not None:
                shutil.rmtree(old.previews.parent, ignore_errors=True)
            if not self.prompts.objects:
                self.prompts.add()

    # ----------------------------------------------------------------- objects
    def add_object(self, name: Optional[str] = None) -> int:
        """A new object with the smallest free id; returns its id."""
        with self.lock:
            self._idle()
            return self.prompts.add(name)

    def rename_object(self, obj_id: int, name: str) -> None:
        """Give an object a new name (names are for the page; files keep the ids)."""
        with self.lock:
            self.prompts.rename(obj_id, name)

    def remove_object(self, obj_id: int) -> None:
        """Forget an object: its prompts, and its pixels in every label map."""
        with self.lock:
            self._idle()
            self.prompts.remove(obj_id)
            self.history.clear()
            if self.video is None:
                return
            if obj_id in (self.video_session.object_ids if self.video_session is not None else []):
                with self.model_lock:
                    self.video_session.remove_object(obj_id)
            self.label_maps.erase(obj_id)
            self.version += 1

    # ----------------------------------------------------------------- prompts
    def add_click(self, frame: int, obj_id: Optional[int], x: float, y: float, positive: bool) -> None:
        """A positive or negative click for ``obj_id`` on ``frame``; the frame's mask is updated at once."""
        with self.lock:
            self._prompt_checks(frame, obj_id)
            self._check_point(x, y)
            before = self._side(frame, obj_id)
            with self.model_lock:
                mask = self.video_session.add_points(frame, obj_id, np.array([[x, y]], np.float32),
                                                     np.array([1 if positive else 0]))
            self.prompts.add_point(frame, obj_id, x, y, 1 if positive else 0)
            self._prompted(frame, obj_id, mask)
            self.history.record(Edit("click", frame, obj_id, before, self._side(frame, obj_id)))

    def add_box(self, frame: int, obj_id: Optional[int], box: Tuple[float, float, float, float]) -> None:
        """A box around ``obj_id`` on ``frame``; the frame's mask is updated at once."""
        with self.lock:
            self._prompt_checks(frame, obj_id)
            x0, y0, x1, y1 = (float(v) for v in box)
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
            self._check_point(x0, y0)
            self._check_point(x1, y1)
            if x1 - x0 < 2 or y1 - y0 < 2:
                raise UiError("the box is too small: drag it around the object")
            before = self._side(frame, obj_id)
            with self.model_lock:
                mask = self.video_session.add_box(frame, obj_id, np.array([x0, y0, x1, y1], np.float32))
            self.prompts.set_box(frame, obj_id, (x0, y0, x1, y1))
            self._prompted(frame, obj_id, mask)
            self.history.record(Edit("box", frame, obj_id, before, self._side(frame, obj_id)))

    def clear_prompt(self, frame: int, obj_id: Optional[int]) -> None:
        """Forget ``obj_id``'s clicks and box on ``frame`` and take its mask off that frame (undoable)."""
        with self.lock:
            self._prompt_checks(frame, obj_id)
            if self.prompts.mark(frame, obj_id) is None:
                raise UiError(f"{self.prompts.objects[obj_id]} has no click on frame {frame}")
            before = self._side(frame, obj_id)
            labels = before.labels()
            changed = frame if before.changed_from is None else min(before.changed_from, frame)
            after = Side.of(None, None if labels is None else np.where(labels == obj_id, 0, labels), changed)
            self._apply(frame, obj_id, after)
            self.history.record(Edit("clear", frame, obj_id, before, after))

    def undo(self) -> None:
        """Undo the latest click, box or clear: the prompt and the frame's masks as they were before it."""
        self._step(undo=True)

    def redo(self) -> None:
        """Redo the latest undone click, box or clear."""
        self._step(undo=False)

    def _step(self, undo: bool) -> None:
        with self.lock:
            self._need_video()
            self._idle()
            edit = self.history.undo() if undo else self.history.redo()
            if edit is None:
                raise UiError("nothing to undo" if undo else "nothing to redo")
            try:
                self._apply(edit.frame, edit.obj_id, edit.before if undo else edit.after)
            except BaseException:
                self.history.put_back(edit, undone=undo)
                raise

    def _side(self, frame: int, obj_id: int) -> Side:
        """The object's prompt on ``frame`` and the frame's label map as they are now."""
        return Side.of(self.prompts.mark(frame, obj_id), self.labels(frame), self.changed_from)

    def _apply(self, frame: int, obj_id: int, side: Side) -> None:
        """Make the object's prompt on ``frame``, the frame's label map and ``changed_from`` those of ``side``."""
        with self.model_lock:
            self.video_session.set_clicks(frame, obj_id, *side.prompt())
        self.prompts.set_mark(frame, obj_id, side.mark)
        self.label_maps.write(frame, side.labels())
        self.changed_from = side.changed_from
        self.version += 1

    def _prompt_checks(self, frame: int, obj_id: Optional[int]) -> None:
        self._need_video()
        self._idle()
        self.check_frame(frame)
        self.prompts.check(obj_id)

    def _check_point(self, x: float, y: float) -> None:
        h, w = self._need_video().size
        if not (0 <= x <= w and 0 <= y <= h):
            raise UiError(f"the point {x:.0f}, {y:.0f} is outside the {w}x{h} frame")

    def _prompted(self, frame: int, obj_id: int, mask: np.ndarray) -> None:
        """Put the object's new mask into the frame's label map and note the change for Track."""
        self.label_maps.put(frame, obj_id, mask)
        self.changed_from = frame if self.changed_from is None else min(self.changed_from, frame)
        self.version += 1

    # ------------------------------------------------------------------- Track
    def start_track(self, follow_motion: Optional[bool] = None) -> str:
        """Start Track over the whole clip in the background (see the module's rules); returns a warning
        naming the objects left out because they have no click or box ("" when none is).
        ``follow_motion`` turns the motion prior on or off for this run (None: the server's options)."""
        with self.lock:
            self._need_video()
            self._idle()
            objects = self.prompts.objects
            if not objects:
                raise UiError("add an object and click on it before Track")
            prompted = self.prompts.prompted()
            if not prompted & set(objects):
                raise UiError("click on an object before Track: no object has a click or a box yet")
            left_out = [objects[k] for k in sorted(objects) if k not in prompted]
            self.track_note = (f"left out of Track, no click yet: {', '.join(left_out)}" if left_out else "")
            self.history.clear()
            self.video_session.set_options(self.options if follow_motion is None else
                                           with_motion(self.options, follow_motion))

            def frames():
                return self.video_session.propagate("both")

            def on_frame():
                self.version += 1

            def finished():
                with self.lock:
                    if self.job is job and job.state == "done":
                        self.tracked, self.changed_from = True, None

            job = TrackJob(frames, LabelWriter(self.labels_dir), len(self.video), self.model_lock, on_frame,
                           on_end=finished)
            self.job = job.start()
            return self.track_note

    def cancel_track(self) -> None:
        """Stop a running Track after its current frame."""
        with self.lock:
            if self.busy:
                self.job.cancel()

    # ----------------------------------------------------------------- the page
    def describe(self) -> dict:
        """Everything the page shows, as JSON-ready data."""
        with self.lock:
            video = None
            if self.video is not None:
                h, w = self.video.size
                video = {"name": self.video.name, "frames": len(self.video), "width": w, "height": h,
                         "fps": round(self.video.fps, 3), "opened": self.videos_opened}
            return {
                "video": video,
                **self.prompts.describe(),
                "track": self.job.progress() if self.job is not None else None,
                "tracked": self.tracked,
                "changed_from": self.changed_from,
                "version": self.version,
                "history": self.history.describe(),
                "track_note": self.track_note,
            }

    def close(self) -> None:
        """End the session: stop its Track and remove its folder."""
        job = self.job
        if job is not None:  # not under the lock: the job's last step takes it
            job.cancel()
            job.wait(60)
        with self.lock:
            shutil.rmtree(self.folder, ignore_errors=True)


def _video_session() -> Callable:
    from ..tracking.session import VideoSession
    return VideoSession
