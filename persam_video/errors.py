"""The one exception type that reaches users as a one-line message, and its wording helpers."""
from __future__ import annotations

import re
from typing import Callable, Iterable, List, Optional, Sequence, TypeVar

T = TypeVar("T")


class PersamError(Exception):
    """A problem with the user's input or environment.

    The command line prints ``str(error)`` on one line and exits with status 2;
    library callers can catch it like any other exception.
    """


def error_line(error: BaseException) -> str:
    """One line saying what went wrong: an OS error's text (``strerror``), else the first
    non-empty line of the message, without decord's ``[time] file.cc:line:`` prefix."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", line)


def wxh(shape: Sequence[int]) -> str:
    """``WxH`` of an (H, W, ...) shape."""
    return f"{shape[1]}x{shape[0]}"


def check_size(what: str, shape: Sequence[int], expected: Sequence[int], expected_what: str) -> None:
    """Raise ``PersamError("<what> is WxH but <expected_what> WxH (width x height)")`` unless
    the (H, W, ...) ``shape`` has the height and width of ``expected``.

    ``expected_what`` carries its verb: ``"the frames are"``, ``"the video started at"``.
    """
    if tuple(shape[:2]) != tuple(expected[:2]):
        raise PersamError(f"{what} is {wxh(shape)} but {expected_what} {wxh(expected)} (width x height)")


def choose(available: Sequence[T], wanted: Optional[Iterable[T]], unknown: Callable[[List[T]], str]) -> List[T]:
    """The ``wanted`` items in the order of ``available`` (all of ``available`` when None);
    ``PersamError(unknown(missing))`` when some of them are not available."""
    if wanted is None:
        return list(available)
    wanted = list(wanted)
    missing = [item for item in wanted if item not in available]
    if missing:
        raise PersamError(unknown(missing))
    return [item for item in available if item in set(wanted)]
