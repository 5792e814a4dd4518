"""Errors that reach the user as one line.

`UserError` is for anything the user can fix (a path, a key, a value). The CLI prints its message on one line and
exits with status 2; nothing else about it is shown.
"""


class UserError(Exception):
    """A problem with the user's input, with a message that says what is wrong and how to fix it."""


class TrainingError(Exception):
    """Training cannot go on (for example the loss stayed non-finite); the last good checkpoint is kept."""


class Interrupted(Exception):
    """Training stopped on a signal (Ctrl-C, SIGTERM) after writing a checkpoint; the message says how to resume.
    The CLI exits with 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = int(signum)
