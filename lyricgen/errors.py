"""The one error type the command line turns into a single line on stderr and an exit code."""


class LyricgenError(Exception):
    """A problem the user can fix (bad input, missing file, ...); runtime failures exit with 1."""

    exit_code = 1


class UsageError(LyricgenError):
    """A bad option value or combination: exit code 2, like a command-line parsing error."""

    exit_code = 2


class Interrupted(LyricgenError):
    """Training stopped by a signal after saving a checkpoint (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def require(ok: bool, message: str) -> None:
    """A settings check: a UsageError with `message` unless `ok`."""
    if not ok:
        raise UsageError(message)
