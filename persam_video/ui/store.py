"""The browser sessions of one server: created on a first visit, ended when idle or at shutdown.

Each session has a random id (the page's cookie) and a folder under the server's own temporary
folder. A session the page has not been heard from for ``timeout`` seconds (the open page asks
for its state every 20 s), and that is not tracking, is ended and its folder removed; stopping
the server ends them all and removes the server's folder.
"""
from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Optional

from ..options import TrackerOptions
from .browser_session import BrowserSession
from .video import UiError


class SessionStore:
    """The live :class:`BrowserSession` objects, by id, and their common temporary folder."""

    def __init__(self, model, options: TrackerOptions, timeout: float = 1800.0, max_sessions: int = 8,
                 root: Optional[Path] = None, session_class: Optional[Callable] = None):
        self.model = model
        self.session_class = session_class
        self.options = options
        self.timeout = timeout
        self.max_sessions = max_sessions
        self.root = Path(tempfile.mkdtemp(prefix="persam-video-ui-", dir=root))
        self.model_lock = threading.Lock()  # one model for every session: one forward pass at a time
        self._sessions: Dict[str, BrowserSession] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="persam-ui-sweeper", daemon=True)
        self._sweeper.start()

    def create(self) -> BrowserSession:
        """A new session with its own folder."""
        self.sweep()
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise UiError(f"the server already has {self.max_sessions} sessions open: try again later",
                              status=503)
            sid = secrets.token_urlsafe(24)
            folder = self.root / f"session-{len(self._sessions)}-{secrets.token_hex(4)}"
            folder.mkdir()
            session = BrowserSession(sid, folder, self.model, self.options, self.model_lock,
                                     self.session_class)
            self._sessions[sid] = session
            return session

    def get(self, sid: Optional[str]) -> Optional[BrowserSession]:
        """The live session with id ``sid`` (and mark it seen), or None."""
        with self._lock:
            session = self._sessions.get(sid or "")
        if session is not None:
            session.touch()
        return session

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def end(self, sid: str) -> None:
        """End one session and remove its folder."""
        with self._lock:
            session = self._sessions.pop(sid, None)
        if session is not None:
            session.close()

    def sweep(self) -> None:
        """End the sessions idle for longer than the timeout (a session tracking is never idle)."""
        now = time.monotonic()
        with self._lock:
            stale = [sid for sid, s in self._sessions.items() if not s.busy and now - s.last_seen > self.timeout]
        for sid in stale:
            self.end(sid)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(min(30.0, self.timeout / 2)):
            self.sweep()

    def close(self) -> None:
        """End every session and remove the server's folder."""
        self._stop.set()
        with self._lock:
            sids = list(self._sessions)
        for sid in sids:
            self.end(sid)
        shutil.rmtree(self.root, ignore_errors=True)
