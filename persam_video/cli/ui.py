"""``persam-video ui``: a local web page to load a clip, click the objects, track, correct and export."""
from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from ..errors import PersamError
from .common import add_command, add_method_options, add_model_options, check_threads, load_model, tracker_options

EPILOG = """examples:
  persam-video ui                                   then open http://127.0.0.1:7860/
  persam-video ui --video clip.mp4                  also offers clip.mp4 in the page
  persam-video ui --model-type vit_b --port 8000    Meta's SAM, for real footage

The page: upload a video (or open the --video one), add objects, click inside them
(positive / negative clicks, or drag a box) and see each object's mask at once (zoom in,
undo a click), Track through the whole clip (each frame's masks show as soon as it is
tracked), play or scrub the result, click again on a frame where it went wrong and Track
again, then download the label PNGs, an overlay mp4, mattes or cut-outs, and the prompts
file that 'persam-video segment --prompts' replays. Press ? in the page for its keys.

Each browser session has its own temporary folder (upload, frames, masks, downloads),
removed when the session ends (no request from its page for --session-timeout minutes)
and when the server stops. The server listens on 127.0.0.1 (this machine only) unless
--host says otherwise; it never makes a public link.
"""
UI_EXTRA = "pip install 'persam-video[ui]' (in a checkout: pip install -e '.[ui]')"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``ui`` subcommand."""
    parser = add_command(sub, "ui", "a local web page: click the objects, track, correct, export (the [ui] extra)",
        "Start a local web app to segment a video with clicks: load a clip, click the objects, "
        "track, correct and download the results. Needs the [ui] extra.", EPILOG)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 opens it to "
                             "the network, with no password)")
    parser.add_argument("--port", type=int, default=7860, metavar="N",
                        help="port to listen on; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--video", metavar="PATH",
                        help="a video file or folder of frames on this machine, offered in the page")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, metavar="MB",
                        help="largest video the page accepts, in MB (default: %(default)s)")
    parser.add_argument("--session-timeout", type=float, default=30.0, metavar="MIN",
                        help="end a browser session and remove its files after this many minutes without a "
                             "request from its page (default: %(default)s)")
    parser.add_argument("--max-sessions", type=int, default=8, metavar="N",
                        help="browser sessions open at once (default: %(default)s)")
    add_method_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def model_note(model_type: str) -> str:
    """What the page says about the model."""
    if model_type == "small":
        return ("the bundled small model, a weak demo model trained on synthetic shapes; start the server with "
                "--model-type vit_b (or vit_h) for real footage")
    if model_type.startswith("sam2.1_"):
        return "Meta's SAM 2.1 (image model)"
    return "Meta's Segment Anything" if model_type.startswith("vit_") and model_type != "vit_t" else "MobileSAM"


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (a one-line error when it cannot be)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise PersamError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def check_args(args: argparse.Namespace) -> None:
    """One-line errors for values that make no sense, before the model is loaded."""
    if not 0 <= args.port <= 65535:
        raise PersamError(f"--port must be between 0 and 65535, not {args.port}")
    if not args.max_upload_mb > 0:
        raise PersamError(f"--max-upload-mb must be above 0, not {args.max_upload_mb}")
    if not args.session_timeout > 0:
        raise PersamError(f"--session-timeout must be above 0 minutes, not {args.session_timeout}")
    if args.max_sessions < 1:
        raise PersamError(f"--max-sessions must be at least 1, not {args.max_sessions}")
    if args.video and not Path(args.video).exists():
        raise PersamError(f"--video: not found: {args.video}")
    check_threads(args.threads)


def run(args: argparse.Namespace) -> int:
    """Run the ``ui`` subcommand: serve until Ctrl-C."""
    try:
        import uvicorn

        from ..ui import UiConfig, create_app
    except ImportError as exc:
        raise PersamError(f"the web page needs the ui extra ({exc.name} is missing): {UI_EXTRA}") from None
    options = tracker_options(args)
    check_args(args)
    sock = listen(args.host, args.port)
    try:
        model = load_model(args)
        config = UiConfig(model_name=args.model_type, model_note=model_note(args.model_type), options=options,
                          max_upload_mb=args.max_upload_mb, session_timeout=args.session_timeout * 60,
                          max_sessions=args.max_sessions, preset=Path(args.video).resolve() if args.video else None)
        app = create_app(model, config)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"persam-video ui: serving http://{shown}:{port}/ with the {args.model_type} model; Ctrl-C stops it",
              flush=True)
        print(f"session files: {app.state.store.root} (removed when the server stops)", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"persam-video: warning: listening on {args.host}: anyone who can reach this machine can use "
                  "the page", file=sys.stderr, flush=True)
        try:
            uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])
        finally:
            app.state.store.close()
    finally:
        sock.close()
    return 0
