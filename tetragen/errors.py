"""Errors that reach the user as one line.

`UserError` is for anything the user can fix (a path, a key, a value). The CLI prints its message on one line and
exits with status 2; nothing else about it is shown.
"""


class UserError(Exception):
    """A problem with the user's input, with a message that says what is wrong and how to fix it."""


class TrainingError(Exception):
    """Training cannot go on (for example the loss stayed non-finite); the last good checkpoint is kept."""
