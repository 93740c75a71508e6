"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class ExplorerError(Exception):
    """An error caused by input or state the user can fix; never a bug."""

    exit_code = 1


class ParseError(ExplorerError):
    """A malformed query expression."""

    exit_code = 2


class UnknownWord(ExplorerError):
    """A word that cannot be resolved to tokens of the chosen vocabulary."""


class UnknownModel(ExplorerError):
    """A model spec that is neither stored, bundled, a local directory nor a cached id."""


class CorruptFile(ExplorerError):
    """A stored file whose checksum or format does not match the catalog."""
