"""The status a request ends with, in TF Serving's terms: a canonical code and a message.

TF Serving answers every failed request with an absl status code; gRPC sends that code as is and
REST turns it into an HTTP status (`http_server.cc` `ToHTTPStatusCode`) with `{"error": message}`.
One exception type carries that pair through the server so both transports answer alike.
"""

from __future__ import annotations

# Canonical codes by name; the numbers are the gRPC / tensorflow.error.Code values.
CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
_NAMES = {number: name for name, number in CODES.items()}

# TF Serving's ToHTTPStatusCode, code by code.
HTTP_STATUS: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingStatus(Exception):
    """A request failed with canonical `code` (e.g. "NOT_FOUND") and TF Serving's `message`.

    Not a `TfshipError`: it is an answer to a client, not a failure of the `tfship` command.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"Unknown status code {code!r}; expected one of {sorted(CODES)}.")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def code_name(number: int) -> str:
    """"INVALID_ARGUMENT" for 3; unknown numbers are "UNKNOWN" (as TF Serving maps them)."""
    return _NAMES.get(int(number), "UNKNOWN")


def invalid_argument(message: str) -> ServingStatus:
    return ServingStatus("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingStatus:
    return ServingStatus("NOT_FOUND", message)
