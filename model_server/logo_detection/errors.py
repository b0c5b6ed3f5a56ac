"""Per-instance error types: one broken image yields one of these, never a failed request."""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    """The documented, stable set of per-instance error types (README.md#errors)."""

    FETCH_FAILED = "fetch_failed"  # network, DNS, TLS, timeout, non-2xx answer
    URL_NOT_ALLOWED = "url_not_allowed"  # scheme/host/port/address refused by policy
    TOO_LARGE = "too_large"  # byte or pixel limit exceeded
    UNSUPPORTED_FORMAT = "unsupported_format"  # bytes are not an image type we read
    DECODE_FAILED = "decode_failed"  # recognised type but corrupt/truncated/unsafe
    OVERLOADED = "overloaded"  # server busy: retry later
    INTERNAL = "internal_error"  # a bug on our side; logged with a traceback


class ImageError(Exception):
    """An instance-level failure; carries the error type the client sees."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"type": self.error_type.value, "message": self.message}


def undecodable(reason: object) -> ImageError:
    """A recognised image whose bytes cannot be decoded (corrupt, truncated, unsupported)."""
    return ImageError(ErrorType.DECODE_FAILED, f"the image could not be decoded: {reason}")
