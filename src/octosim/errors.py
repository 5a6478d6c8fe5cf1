"""User-facing errors.

A mistake in a user's input is reported as one line, ``error: FILE: where: what``, and
exit status 2. Library code raises :class:`UserError`; only the command line prints it.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a file, a name, a value or an impossible request."""

    def __init__(self, what: str, *, file: str | None = None, where: str | None = None):
        self.file = file
        self.where = where
        self.what = what
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, self.where) if p]
        parts.append(self.what)
        # Always one line, whatever a library's message contained.
        return "error: " + " ".join(": ".join(parts).split())

    def within(self, *, file: str | None = None, where: str | None = None) -> UserError:
        """Return a copy located in ``file``/``where`` unless it already names them."""
        w = self.where
        if where:
            w = f"{where}.{w}" if w else where
        return UserError(self.what, file=self.file or file, where=w)
