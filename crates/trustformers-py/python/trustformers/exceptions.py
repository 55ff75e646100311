"""The exceptions trustformers raises.

Every error from the Rust engine is a :class:`TrustformersError`, and also the builtin
exception Python code catches for its kind, so ``except ValueError`` and ``except OSError``
work as they do around transformers.
"""


class TrustformersError(Exception):
    """Base class of every error raised by trustformers."""


class InvalidArgument(TrustformersError, ValueError):
    """A bad argument, parameter, configuration value or input (a ``ValueError``)."""


class CheckpointError(TrustformersError, OSError):
    """A checkpoint or tokenizer file that cannot be read or used (an ``OSError``, as
    transformers raises for a bad checkpoint)."""


class FileNotFound(TrustformersError, FileNotFoundError):
    """A file or directory that does not exist (a ``FileNotFoundError``)."""


__all__ = ["TrustformersError", "InvalidArgument", "CheckpointError", "FileNotFound"]
