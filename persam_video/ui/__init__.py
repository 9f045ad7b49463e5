"""``persam-video ui``: a local web page to load a clip, click the objects, track, correct and export.

:func:`create_app` builds the FastAPI app (``server``) around one loaded model; every browser
session gets its own state and temporary folder (``state``, ``store``); Track runs in the
background (``tracking``); downloads come from the library's exporters (``downloads``); the
page itself is plain HTML and JavaScript in ``static/``. Needs the ``[ui]`` extra.
"""
from .server import UiConfig, create_app

__all__ = ["UiConfig", "create_app"]
