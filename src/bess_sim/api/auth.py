"""Bearer-token check for mutating routes (DESIGN §6).

When ``settings.api_token`` (env ``BESS_API_TOKEN``) is set, every POST/PUT/PATCH/DELETE needs
``Authorization: Bearer <token>``; reads stay open so dashboards and monitoring need no secret.
The check is a dependency (so OpenAPI documents the security scheme on exactly those routes)
and is repeated by the request-validation error handler, so that an unauthenticated request
with a malformed body gets 401, not a 422 that would reveal the body schema is reachable.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The simulator runs with BESS_API_TOKEN: POST routes need this bearer token.",
)


def token_ok(expected: str | None, authorization: str | None) -> bool:
    """True when no token is configured, or ``authorization`` is ``Bearer <expected>``."""
    if expected is None:
        return True
    if authorization is None:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # compare_digest: no timing side channel on the token.
    return secrets.compare_digest(value.strip().encode(), expected.encode())


def unauthorized() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="missing or invalid bearer token (send 'Authorization: Bearer <BESS_API_TOKEN>')",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_token(expected: str | None) -> Callable[..., Awaitable[None]]:
    """A dependency enforcing the bearer token ``expected``; None = open.

    Without a token the dependency declares no security scheme, so the OpenAPI document of a
    simulator matches how it is configured (an open simulator documents no auth).
    """
    if expected is None:

        async def open_route() -> None:
            return None

        return open_route

    async def check(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> None:
        # The header is read directly: HTTPBearer returns None for a malformed header, and the
        # parameter above is there so that OpenAPI shows the scheme.
        if not token_ok(expected, request.headers.get("authorization")):
            raise unauthorized()

    return check
