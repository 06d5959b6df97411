"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""


class EchoKDMError(Exception):
    """Base class of errors caused by the user's input or settings (not by a bug in echokdm)."""

    exit_code = 2


class InputError(EchoKDMError):
    """An input file or folder is missing, unreadable, malformed or of the wrong kind."""


class UnsupportedError(EchoKDMError):
    """The input is valid but uses something echokdm cannot handle (e.g. a transfer syntax without decoder)."""


class OutputError(EchoKDMError):
    """The output location cannot be used (exists and is not ours, read-only, full)."""


class RemoteError(EchoKDMError):
    """A server (DICOMweb) cannot be reached or refused a request: every further request would fail too."""


class StoreError(RemoteError):
    """A server refused to store results (the results stay where they were written)."""
