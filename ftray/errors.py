"""The one exception type users see: a single line that names the field or file at fault."""


class FtrayError(Exception):
    """A user-facing error; the CLI prints its message as one line and exits non-zero."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
