"""The OpenAPI document describes the errors the service really sends.

Every error of every endpoint is an RFC 9457 ``application/problem+json``
document (CONTRACT §4, `auth_service.errors`), but Litestar documents the errors
it knows of as its own JSON shape, and none of the guards' 401/403/429/503. This
rewrites the generated document once, when the app is built: each operation's
error responses, and a ``4XX``/``5XX`` range for the rest, name the ``Problem``
schema; operations that render HTML pages also list ``text/html`` for errors,
which browsers get (clients that do not accept HTML get the problem document).
"""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)

from auth_service.errors import PROBLEM_JSON

__all__ = ("document_problems",)

_PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status", "detail", "request_id"],
    properties={
        "type": Schema(type=OpenAPIType.STRING),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "request_id": Schema(type=OpenAPIType.STRING),
        "reason": Schema(type=OpenAPIType.STRING),
        "errors": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING)),
    },
    description="RFC 9457 problem details; never a token, secret or stack trace.",
)
_HTML = "text/html"


def _error_response(description: str, *, html: bool) -> OpenAPIResponse:
    content = {PROBLEM_JSON: OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))}
    if html:
        content[_HTML] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
    return OpenAPIResponse(description=description, content=content)


def _operations(item: object) -> list[Operation]:
    found = []
    for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
        op = getattr(item, method, None)
        if isinstance(op, Operation):
            found.append(op)
    return found


def _renders_html(op: Operation) -> bool:
    for code, response in (op.responses or {}).items():
        if (
            code.startswith("2")
            and isinstance(response, OpenAPIResponse)
            and response.content is not None
            and any(media.startswith(_HTML) for media in response.content)
        ):
            return True
    return False


def document_problems(app: Litestar) -> None:
    """Rewrite ``app``'s OpenAPI document so every error response is a problem document."""
    openapi = app.openapi_schema
    if openapi.components is None:
        openapi.components = Components()
    components = openapi.components
    components.schemas = {**(components.schemas or {}), "Problem": _PROBLEM}
    for item in (openapi.paths or {}).values():
        for op in _operations(item):
            html = _renders_html(op)
            responses = dict(op.responses or {})
            for code, response in list(responses.items()):
                if code[:1] in ("4", "5"):
                    description = (
                        response.description if isinstance(response, OpenAPIResponse) else "Error"
                    )
                    responses[code] = _error_response(description, html=html)
            responses.setdefault("4XX", _error_response("Client error", html=html))
            responses.setdefault("5XX", _error_response("Server error", html=html))
            op.responses = responses
