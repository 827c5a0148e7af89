"""Errors the Lambda API answers with, by blame, each knowing its AWS shape.

Every error a caller can see is one of these classes.  The HTTP layer renders
them in one place (``api.render``); nothing else builds error JSON by hand.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import ClassVar


class LambdaApiError(Exception):
    """A service error of the Lambda API (2015-03-31): status, type and message."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "ServiceException"
    blame: ClassVar[str] = "Service"
    #: botocore reads ``message``; a few AWS errors use ``Message`` instead.
    message_key: ClassVar[str] = "message"

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"Type": self.blame, self.message_key: self.message}
        out.update(self.extra)
        return out

    def headers(self) -> dict[str, str]:
        return {"X-Amzn-ErrorType": self.error_type}


class ServiceException(LambdaApiError):
    status = 500
    error_type = "ServiceException"
    message_key = "Message"


class DiskFullException(ServiceException):
    """The data disk is full: the platform cannot write, so it is the service's fault (500),
    but the message names the cause and the way out (deletes always work)."""

    def __init__(self, data_dir: object | None = None) -> None:
        where = "" if data_dir is None else f" ({data_dir})"
        super().__init__(
            f"No space left on the data disk{where}: lambdalet could not write its "
            "store, code or logs. Free space on that disk, or delete functions, versions, "
            "layer versions or aliases (deletes keep working on a full disk)."
        )


class UserError(LambdaApiError):
    blame = "User"


class ResourceNotFoundException(UserError):
    status = 404
    error_type = "ResourceNotFoundException"
    message_key = "Message"


class ResourceConflictException(UserError):
    status = 409
    error_type = "ResourceConflictException"


class InvalidParameterValueException(UserError):
    status = 400
    error_type = "InvalidParameterValueException"


class InvalidRequestContentException(UserError):
    status = 400
    error_type = "InvalidRequestContentException"


class RequestTooLargeException(UserError):
    status = 413
    error_type = "RequestTooLargeException"


class UnsupportedMediaTypeException(UserError):
    status = 415
    error_type = "UnsupportedMediaTypeException"


class TooManyRequestsException(UserError):
    status = 429
    error_type = "TooManyRequestsException"

    def __init__(self, reason: str, retry_after_s: int = 1) -> None:
        super().__init__("Rate Exceeded.", Reason=reason)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after_s)}


class ValidationException(UserError):
    """botocore-model level validation failure (unknown enum value and the like)."""

    status = 400
    error_type = "ValidationException"


class UnrecognizedClientException(UserError):
    status = 403
    error_type = "UnrecognizedClientException"


class InvalidSignatureException(UserError):
    status = 403
    error_type = "InvalidSignatureException"


class PreconditionFailedException(UserError):
    """A RevisionId given with an update no longer matches the function's."""

    status = 412
    error_type = "PreconditionFailedException"


class RequestEntityTooLargeException(UserError):
    """The whole request body is over the operation's limit (e.g. a 50 MB zip upload)."""

    status = 413
    error_type = "RequestEntityTooLargeException"


class UnknownOperationException(UserError):
    """No operation of the API matches the request's method and path."""

    status = 404
    error_type = "UnknownOperationException"


class ProvisionedConcurrencyConfigNotFoundException(UserError):
    status = 404
    error_type = "ProvisionedConcurrencyConfigNotFoundException"


class CodeStorageExceededException(UserError):
    """The account's code storage (every function version's and layer version's zip) would
    pass its limit."""

    status = 400
    error_type = "CodeStorageExceededException"


class MissingAuthenticationTokenException(UserError):
    """A request without a SigV4 ``Authorization`` header where signatures are required."""

    status = 403
    error_type = "MissingAuthenticationTokenException"
    message_key = "message"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk or quota is full."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == (
            sqlite3.SQLITE_FULL
        ):
            return True
        e = e.__cause__ or e.__context__
    return False


class AccessDeniedException(UserError):
    """The caller may not call the API: a request from inside a sandbox with no credentials."""

    status = 403
    error_type = "AccessDeniedException"
    message_key = "Message"


class LogsApiError(UserError):
    """An error of the CloudWatch Logs API (AWS JSON 1.1): HTTP 400 and ``__type``."""

    status = 400

    def body(self) -> dict[str, object]:
        return {"__type": self.error_type, "message": self.message}


class LogsResourceNotFoundException(LogsApiError):
    error_type = "ResourceNotFoundException"


class LogsInvalidParameterException(LogsApiError):
    error_type = "InvalidParameterException"


class LogsUnknownOperationException(LogsApiError):
    error_type = "UnknownOperationException"


class ResourceInUseException(UserError):
    """The resource is changing state (an event source mapping being created, updated or
    deleted) and cannot take another change yet."""

    status = 400
    error_type = "ResourceInUseException"
