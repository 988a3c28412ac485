"""The one error type users see: a single line naming the problem and the fix."""


class HfdlError(Exception):
    """A user-caused problem. `str(err)` is one line: what is wrong and how to fix it."""
