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


# Sizes and counts: any product of two still fits the int64 that torch's sizes are; how much
# memory a size needs is checked where the run's device is known (training/setup.py).
INT_MAX = 2**31 - 1


class SettingError(UsageError):
    """A setting that breaks its rule. `key` names the setting, so that the command line can
    say where the value came from (the option typed, or a preset's file and key)."""

    def __init__(self, key: str, rule: str):
        super().__init__(f"{key} {rule}")
        self.key, self.rule = key, rule
        self.table: str | None = None  # its preset table, where the key names several


def check(ok: bool, key: str, rule: str) -> None:
    if not ok:
        raise SettingError(key, rule)


def check_int(settings: object, key: str, low: int, high: int = INT_MAX) -> None:
    """The integer setting `key` of `settings` within [low, high], worded alike for all."""
    value = getattr(settings, key)
    check(value >= low, key, f"must be at least {low}")
    check(value <= high, key, f"must be at most {high}")


def first_line(e: BaseException) -> str:
    """An exception's message as one line of at most 160 characters, for error lines."""
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def one_line(message: str) -> str:
    """`message` on one line whatever a name in it holds: control characters as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def plural(n: int, noun: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def is_terminal(stream) -> bool:
    """Whether `stream` is a terminal: progress bars and copy marks only there (in a log or a
    pipe they are noise)."""
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a stand-in stream, or one already closed
        return False
