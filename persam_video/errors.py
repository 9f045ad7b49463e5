"""The one exception type that reaches users as a one-line message."""


class PersamError(Exception):
    """A problem with the user's input or environment.

    The command line prints ``str(error)`` on one line and exits with status 2;
    library callers can catch it like any other exception.
    """
