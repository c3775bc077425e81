"""What ends a ``pond`` command early, and the one place that says so.

A command that cannot go on raises :class:`CommandError` where the condition is known, with
one line naming what is wrong and the exit status (as S3QL's ``QuietError``). The errors of
the pond and of the host (:class:`~pondfs.tinyfs.FsError`, which S3 and backup errors are,
and any :class:`OSError`) end a command the same way: :func:`ending` turns them into one.
:func:`pondfs.cli.run` prints it, the only code that prints an error: one line on stderr,
never a traceback. Anything else is a bug, and its traceback is the report.
"""

from __future__ import annotations


class CommandError(Exception):
    """A command ends: ``message`` (one line) for stderr and its ``exit_code``.

    The line reads ``pond COMMAND: message``; ``prefix`` replaces ``pond COMMAND`` for what
    is not one command's to say (an interrupt). An empty message prints nothing.
    """

    def __init__(self, message: str, exit_code: int = 1, *, prefix: str | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.prefix = prefix


def ending(exc: BaseException) -> CommandError | None:
    """The CommandError that ``exc`` ends a command with; None when ``exc`` is a bug (or
    SystemExit), which must propagate."""
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, BrokenPipeError):  # stdout's reader went away (pond cat | head)
        return CommandError("", 141)
    if isinstance(exc, OSError):  # the pond's (FsError) or the host's: a full disk, ...
        where = f": {exc.filename}" if exc.filename else ""
        return CommandError(f"{exc.strerror or exc}{where}")
    if isinstance(exc, KeyboardInterrupt):
        return CommandError("interrupted; nothing was committed", 130, prefix="pond")
    return None
