"""One error type for every SCIM failure, turned into the RFC 7644 §3.12 error body in one place."""

from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """A request that fails with an HTTP status and, where RFC 7644 defines one, a ``scimType``.

    ``detail`` is shown to the client, so it never carries exception text, stack traces or storage keys.
    """

    def __init__(
        self, status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The SCIM error document; ``status`` is a string, as the RFC's schema and Entra's parser want."""
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


def not_found(detail: str = "Resource not found") -> ScimError:
    return ScimError(404, detail)


def uniqueness(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")


def precondition_failed() -> ScimError:
    return ScimError(412, "The resource has changed since the version given in If-Match")


def too_large(detail: str) -> ScimError:
    return ScimError(413, detail)


def unauthorized() -> ScimError:
    """Deliberately says nothing about which check failed."""
    return ScimError(401, "Authentication required", headers={"WWW-Authenticate": 'Bearer realm="scim"'})


def unavailable(detail: str = "The service is temporarily unavailable; retry later") -> ScimError:
    return ScimError(503, detail, headers={"Retry-After": "30"})


def from_validation(exc: Exception) -> ScimError:
    """Turn a scim2-models or pydantic failure into a SCIM error that names the attribute but echoes no input."""
    status = getattr(exc, "status", None)
    scim_type = getattr(exc, "scim_type", None)
    if isinstance(status, int) and 400 <= status < 500:
        cause = exc.__cause__
        if cause is not None and callable(getattr(cause, "errors", None)):
            # scim2-models passes pydantic's own report on ("1 validation error for ScimUser ..."): name the attribute
            located = from_validation(cause)
            return ScimError(status, located.detail, scim_type or located.scim_type)
        return ScimError(status, _first_line(str(exc)), scim_type or None)
    errors = getattr(exc, "errors", None)
    if callable(errors):
        for error in errors():
            context = error.get("ctx") or {}
            location = ".".join(_attribute_name(part) for part in error.get("loc", ()) if not isinstance(part, int))
            detail = f"Invalid value for '{location}'" if location else _first_line(error.get("msg", ""))
            if context.get("scim_type"):
                return ScimError(int(context.get("status", 400)), detail, context["scim_type"])
            if error.get("type") in ("required_error", "missing"):
                return invalid_value(f"Required attribute missing: {_first_line(error.get('msg', location))}")
            return invalid_value(detail)
    return invalid_value("The request is not a valid SCIM resource")


def _attribute_name(part: object) -> str:
    """The SCIM name of a location part: assignments report the model's field (``user_name``), not ``userName``."""
    first, *rest = str(part).split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "Invalid request"
