"""Errors for bad user input. Each message names the problem and the fix; the CLI prints them without
a traceback, and each is a ``ValueError`` so callers that already catch that keep working."""


class HfTransferError(ValueError):
    """Bad input to hf_transfer, found before expensive work starts."""


class DataError(HfTransferError):
    """Bad target data: a missing column, an unknown label, an empty split, ..."""


class ConfigError(HfTransferError):
    """A bad option or recipe file: an unknown key, a value out of range, a method that does not exist."""


def some(items, limit: int = 10) -> str:
    """``items`` for a message, the first ``limit`` of them and a count of the rest: an error about a data set of
    hundreds of label strings should fit on a screen."""
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:limit])
    return f"[{shown}{f', ... ({len(items) - limit} more)' if len(items) > limit else ''}]"
