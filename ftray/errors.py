"""The exception types users see: a single line that names the field or file at fault."""

from registry.errors import RegistryError


class FtrayError(Exception):
    """A user-facing error; the CLI prints its message as one line and exits non-zero."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


# What the CLI and the endpoint report as one line rather than as a bug.
USER_ERRORS = (FtrayError, RegistryError)


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type's name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
