"""``python -m persam_video``: the same as the ``persam-video`` command."""
import sys

from .cli import main

if __name__ == "__main__":  # spawned worker processes import this module too: do not run there
    sys.exit(main())
