"""Track in the background: a thread steps the prompting session's ``propagate`` one frame at a
time through ``segment``'s frame loop (:func:`persam_video.pipeline.write_frames`), which writes
each frame's label PNG and stops between frames when cancelled; it counts progress.

Each frame's label PNG is written before the next frame is tracked, so the page shows a frame's
new masks as soon as the run has passed it (the live preview); the progress names the frame last
written and the pass (forward, then backward once the frame numbers go down)."""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import replace
from typing import Callable, Iterator, Optional

from ..errors import PersamError, error_line
from ..io.writer import LabelWriter
from ..options import TrackerOptions
from ..pipeline import write_frames

RUNNING, DONE, CANCELLED, FAILED = "running", "done", "cancelled", "failed"


def with_motion(options: TrackerOptions, on: bool) -> TrackerOptions:
    """``options`` with the motion prior the page's "follow motion" switch stands for: flow and the
    leak guard at 1 (the setting measured best, docs/method.md), or neither."""
    return replace(options, propagation="flow" if on else "none", leak_guard=1.0 if on else 0.0)


class TrackJob:
    """One run of Track: ``frames`` yields the session's ``FrameResult``s; each one's label map is
    written to ``writer`` as it comes. ``model_lock`` is held for each frame's model work only, so
    other browser sessions can click in between. ``on_frame`` is called after each written frame,
    ``on_end`` once the run has ended, however it ended."""

    def __init__(self, frames: Callable[[], Iterator], writer: LabelWriter, total: int,
                 model_lock: threading.Lock, on_frame: Callable[[], None] = lambda: None,
                 on_end: Callable[[], None] = lambda: None):
        self._frames = frames
        self._writer = writer
        self._lock = model_lock
        self._on_frame = on_frame
        self._on_end = on_end
        self._cancel = threading.Event()
        self.total = total
        self.done = 0
        self.frame: Optional[int] = None  # the frame last written
        self.direction = "forward"
        self.state = RUNNING
        self.message = ""
        self.started = time.monotonic()
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="persam-ui-track", daemon=True)

    def start(self) -> "TrackJob":
        """Start the thread; returns self."""
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """Whether the run has not finished yet."""
        return self.state == RUNNING

    def cancel(self) -> None:
        """Ask the run to stop after the frame it is on (the frames written so far are kept)."""
        self._cancel.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        iterator = None
        state, message = FAILED, ""
        try:
            with self._lock:
                iterator = iter(self._frames())
            for result in write_frames(iterator, self._writer, guard=self._lock, stop=self._cancel.is_set):
                index = getattr(result, "index", None)
                if index is not None and self.frame is not None and index < self.frame:
                    self.direction = "backward"
                self.frame = index
                self.done = min(self.done + 1, self.total)
                self._on_frame()
            state = CANCELLED if self._cancel.is_set() else DONE
        except PersamError as exc:
            message = str(exc)
        except Exception as exc:  # reported in the page; the server's console gets the traceback
            traceback.print_exc()
            message = f"tracking failed: {error_line(exc)}"
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with self._lock:
                    close()
            self.seconds = time.monotonic() - self.started
            self.message = message
            self.state = state
            self._on_end()

    def progress(self) -> dict:
        """What the page's progress bar shows."""
        return {"state": self.state, "done": self.done, "total": self.total, "message": self.message,
                "frame": self.frame, "direction": self.direction,
                "seconds": round(self.seconds if not self.running else time.monotonic() - self.started, 1)}
