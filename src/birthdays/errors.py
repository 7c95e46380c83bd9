"""The one exception tree of the birthday service.

::

    BirthdaysError              anything the service reports (the CLI prints one line, exit 1)
    ├── ConfigError             bad command line or environment (exit 2)
    ├── LauncherError           the database server could not be started
    ├── HTTPError               a request answered with an error status and a JSON problem body
    └── StoreError              the database failed an operation (answered 500)
        └── StoreUnavailable    the database cannot be reached or timed out (503, Retry-After)

Foreign errors (pymongo's, ``OSError`` from the launcher) are translated at the boundary into
these, naming the operation: ``cannot insert 3 documents into demo.birthdays: connection
refused``.
"""

from __future__ import annotations

from http import HTTPStatus


class BirthdaysError(Exception):
    """Base of every error the service reports."""

    exit_code = 1


class ConfigError(BirthdaysError):
    """The command line or the environment does not configure a service."""

    exit_code = 2


class LauncherError(BirthdaysError):
    """The database server process could not be started."""


class HTTPError(BirthdaysError):
    """A request the server answers with ``status`` and an RFC 9457 problem body.

    ``close`` says the connection cannot be reused afterwards (the body was not read, or the
    request could not be framed).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.close = close

    @property
    def title(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Error"


class StoreError(BirthdaysError):
    """The database refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, or did not answer in time."""
