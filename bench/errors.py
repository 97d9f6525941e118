"""The one exception type for mistakes a user can make; the CLI prints it as one line."""


class BenchError(Exception):
    """A user-facing error: bad input, missing or corrupt data, unreadable record.

    The CLI catches it, prints ``error: <message>`` on one line and exits non-zero;
    everything else is a bug and keeps its traceback.
    """
