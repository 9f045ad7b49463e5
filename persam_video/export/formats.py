"""The file formats of the exports: which kind may go to which, and the ffmpeg codec behind each video.

``png`` is a folder of PNGs (RGB, RGBA or grey), ``mp4`` an H.264 video (a matte as grey
frames, for a luma key), ``prores`` a ProRes 4444 ``.mov`` with alpha and ``webm`` a VP9
``.webm`` with alpha (the two an editing program imports with transparency), ``json`` the
annotation files of the ``coco`` kind. Video codecs are those of imageio-ffmpeg's bundled
ffmpeg; one it lacks is a one-line error before anything is written.
"""
from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Tuple

import imageio_ffmpeg

from ..errors import PersamError
from ..io.files import PathLike


@dataclass(frozen=True)
class VideoFormat:
    """How a video format is encoded: codec, pixel formats in and out, extra ffmpeg flags, file suffixes."""

    codec: str
    pix_fmt_in: str
    pix_fmt_out: str
    suffixes: Tuple[str, ...]
    quality: Optional[float] = None
    output_params: List[str] = field(default_factory=list)


VIDEO_FORMATS: Dict[str, VideoFormat] = {
    "mp4": VideoFormat("libx264", "rgb24", "yuv420p", (".mp4", ".mov", ".m4v", ".mkv"), quality=8),
    "prores": VideoFormat("prores_ks", "rgba", "yuva444p10le", (".mov",),
                          output_params=["-profile:v", "4444", "-vendor", "apl0"]),
    "webm": VideoFormat("libvpx-vp9", "rgba", "yuva420p", (".webm",),
                        output_params=["-b:v", "0", "-crf", "24", "-auto-alt-ref", "0", "-row-mt", "1"]),
}

#: the formats each kind may be written as, the first its default for a folder
KIND_FORMATS: Dict[str, Tuple[str, ...]] = {
    "overlay": ("png", "mp4"), "matte": ("png", "mp4"), "cutout": ("png", "prores", "webm"),
    "remove": ("png", "mp4"), "blur": ("png", "mp4"), "replace": ("png", "mp4"), "keep": ("png", "mp4"),
    "coco": ("json",),
}
FORMATS = ("png", "mp4", "prores", "webm", "json")


@functools.lru_cache(maxsize=1)
def ffmpeg_encoders() -> FrozenSet[str]:
    """The encoder names of imageio-ffmpeg's bundled ffmpeg (``ffmpeg -encoders``)."""
    try:
        listing = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-encoders"],
                                 capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names = [line.split()[1] for line in listing.splitlines() if len(line.split()) > 1 and line.startswith(" V")]
    return frozenset(names)


def choose_format(kind: str, out: PathLike, wanted: Optional[str]) -> str:
    """The format for ``kind`` written to ``out``: ``wanted``, or by ``out``'s suffix (a folder: ``png``).

    Raises :class:`PersamError` for a format the kind cannot have, an ``out`` of another
    suffix than the format's, or a codec the bundled ffmpeg cannot encode.
    """
    allowed = KIND_FORMATS[kind]
    suffix = Path(out).suffix.lower()
    if wanted is None:
        by_suffix = [f for f in allowed if f in VIDEO_FORMATS and suffix in VIDEO_FORMATS[f].suffixes]
        wanted = by_suffix[0] if by_suffix else allowed[0]
        if wanted == "png" and suffix in {s for f in VIDEO_FORMATS.values() for s in f.suffixes}:
            raise PersamError(f"{kind} exports cannot be video files like {out}; "
                              f"choose a folder{' or --format ' + ' or '.join(allowed[1:]) if allowed[1:] else ''}")
    if wanted not in FORMATS:
        raise PersamError(f"unknown format {wanted!r}; choose one of {', '.join(FORMATS)}")
    if wanted not in allowed:
        raise PersamError(f"a {kind} export can be written as {' or '.join(allowed)}, not {wanted}")
    video = VIDEO_FORMATS.get(wanted)
    if video is not None:
        if suffix not in video.suffixes:
            raise PersamError(f"--format {wanted} writes a {' or '.join(video.suffixes)} file; {out} ends otherwise")
        if video.codec not in ffmpeg_encoders():
            raise PersamError(f"the bundled ffmpeg ({imageio_ffmpeg.get_ffmpeg_exe()}) cannot encode {wanted} "
                              f"(no {video.codec} encoder)")
    return wanted
