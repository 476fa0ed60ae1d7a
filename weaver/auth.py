"""Bearer tokens: verification into a `Principal`, and minting for development."""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from jwt.types import Options

from weaver.errors import Unauthorized
from weaver.settings import Settings
from weaver.types import Principal

VERIFIED_TOKEN_CACHE_SIZE = 4096


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.jwt_secret_key
        # Only the configured algorithm: a token that names another (`none`, RS256 with
        # the HMAC secret as a "public key") is refused by PyJWT before any check.
        self._algorithms = [settings.jwt_algorithm]
        self._issuer = settings.jwt_issuer or None
        self._audience = settings.jwt_audience or None
        self._leeway = settings.jwt_leeway_seconds
        required = ["exp", "sub"]
        if self._issuer:
            required.append("iss")
        if self._audience:
            required.append("aud")
        self._options: Options = {"require": required, "verify_aud": bool(self._audience)}
        # Verified tokens by their exact text (signature included), with their validity
        # window: clients send the same token many times, and an HMAC check plus claim
        # parsing costs more than the rest of a small request.
        self._verified: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("expected 'Authorization: Bearer <token>'")
        cached = self._verified.get(token)
        if cached is not None:
            principal, not_before, expires = cached
            if not_before - self._leeway <= time.time() < expires + self._leeway:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, not_before, expires = self._decode(token)
        self._verified[token] = (principal, not_before, expires)
        if len(self._verified) > VERIFIED_TOKEN_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float, float]:
        try:
            with _short_development_keys_allowed():
                claims = jwt.decode(
                    token,
                    self._key,
                    algorithms=self._algorithms,
                    issuer=self._issuer,
                    audience=self._audience,
                    leeway=self._leeway,
                    options=self._options,
                )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not accepted") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience is not accepted") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthorized(f"token lacks the '{error.claim}' claim") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized("token algorithm is not accepted") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("token is invalid") from None
        not_before = float(claims.get("nbf", claims.get("iat", 0)))
        return principal_from_claims(claims), not_before, float(claims["exp"])


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    subject, tenant_id, roles = claims.get("sub"), claims.get("tenant_id"), claims.get("roles", [])
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("token lacks the 'sub' claim")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise Unauthorized("token lacks the 'tenant_id' claim")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("token 'roles' must be a list of strings")
    return Principal(subject=subject, tenant_id=tenant_id, roles=frozenset(roles))


def mint_token(
    settings: Settings,
    *,
    tenant_id: str,
    subject: str,
    roles: Iterable[str],
    ttl_seconds: int = 3600,
) -> str:
    """A signed token for development and tests; the CLI refuses this in production."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "tenant_id": tenant_id,
        "roles": sorted(roles),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    with _short_development_keys_allowed():
        return jwt.encode(claims, settings.jwt_secret_key, algorithm=settings.jwt_algorithm)


@contextmanager
def _short_development_keys_allowed() -> Iterator[None]:
    # The development default secret is short on purpose; production refuses short keys
    # at start-up, so PyJWT's warning would only repeat that on every token.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        yield
