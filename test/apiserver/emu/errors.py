"""API errors of the emulator and the Status objects that carry them.

Every failure a handler can report is raised as an ApiError; the HTTP layer
turns it into the JSON Status body the real API server sends (kind Status,
status Failure, a reason such as NotFound and the HTTP code), so clients see
the same error shapes they would see in a real cluster.
"""


class ApiError(Exception):
    """An error answered with a Status object and the given HTTP code."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code, reason, message, details=None):
    st = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        st["details"] = details
    return st


def _details(res, name):
    d = {"kind": res.plural}
    if name:
        d["name"] = name
    if res.group:
        d["group"] = res.group
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name))


def no_route():
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists', _details(res, name))


def conflict(res, name, why=None):
    why = why or ("the object has been modified; please apply your changes "
                  "to the latest version and try again")
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}',
                    _details(res, name))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def invalid(res, name, causes):
    """422 Invalid; causes is a list of (field, reason, message)."""
    text = "; ".join(f"{f}: {m}" for f, _, m in causes)
    details = {"name": name, "kind": res.kind,
               "causes": [{"reason": r, "message": m, "field": f} for f, r, m in causes]}
    if res.group:
        details["group"] = res.group
    return ApiError(422, "Invalid", f'{res.kind} "{name}" is invalid: {text}', details)


def expired(message):
    return ApiError(410, "Expired", message)


def method_not_allowed(method):
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({method})")


def unsupported_media(ctype):
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got "{ctype}")')


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
    504: "Timeout",
}


def injected(code, retry_after=None):
    """The error a fault of kind "error" answers with."""
    reason = REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")
    headers = {}
    details = None
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
        details = {"retryAfterSeconds": int(retry_after)}
    return ApiError(code, reason, f"injected fault: HTTP {code}", details, headers)
