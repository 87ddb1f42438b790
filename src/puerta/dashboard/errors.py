"""Exceptions that become dashboard pages (HTML), not the API's JSON problems."""

from __future__ import annotations


class PageError(Exception):
    """Stop handling a dashboard request and answer with an error page."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class LoginRequired(Exception):
    """Anonymous reading is off (``auth.public_read: false``): send the visitor to sign in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def forbidden(message: str) -> PageError:
    return PageError(403, "Not allowed", message)


def not_found(message: str) -> PageError:
    return PageError(404, "Not found", message)
