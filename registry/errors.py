"""The registry's one exception type: a single line naming the model, version, alias or object.

The registry stands alone (it imports nothing from ftray or serving), so it has its own; ftray's
CLI and the HTTP endpoint print it as they print their own errors.
"""


class RegistryError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
