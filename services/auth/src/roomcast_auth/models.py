"""Request and response bodies: the same models validate input and feed /openapi.json."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 128
MAX_CLAIM_ITEMS = 100
MAX_BODY_BYTES = 16 * 1024

# Ids may hold any printable text (existing apps use e-mails and UUIDs) but no control
# characters, which would end up in logs and JWT claims. Empty means "not given".
IdText = Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f\x7f]*$")]
# Room and topic names travel comma-separated in ws-edge query strings, so no commas,
# no blanks, no control characters.
ClaimName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[^\x00-\x20\x7f,]+$"),
]
ClaimList = Annotated[list[ClaimName], Field(max_length=MAX_CLAIM_ITEMS)]
TokenId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9_-]+$")
]


class TokenRequest(BaseModel):
    """POST /v1/tokens. is_login=true needs user_id; otherwise device_id is needed."""

    model_config = ConfigDict(extra="forbid", strict=True)

    device_id: IdText | None = None
    user_id: IdText | None = None
    is_login: bool
    rooms: ClaimList | None = Field(
        default=None, description="rooms the connection may join; absent means any"
    )
    topics: ClaimList | None = Field(
        default=None, description="topics the connection may subscribe to; absent means any"
    )
    ttl: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="lifetime in seconds; defaults to ROOMCAST_JWT__TTL, above "
        "ROOMCAST_JWT__MAX_TTL is refused with 400",
    )


class TokenResponse(BaseModel):
    token: str
    token_id: str = Field(description="the token's jti, used to revoke it")
    expires_at: int = Field(description="expiry as Unix time in whole seconds (the exp claim)")


class HeartbeatResponse(BaseModel):
    expires_in: float = Field(description="seconds until this heartbeat lapses")


class RevokeTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token_id: TokenId


class RevokeResponse(BaseModel):
    token_id: str
    revoked: bool
    revoked_until: int = Field(
        description="Unix time in seconds until which the revocation is kept: "
        "now + ROOMCAST_JWT__MAX_TTL + ROOMCAST_JWT__LEEWAY, the longest any token can live"
    )


class CompatTokenQuery(BaseModel):
    """GET /get/token query. Unknown parameters are ignored, as they always were."""

    model_config = ConfigDict(extra="ignore")

    deviceId: IdText | None = None
    userId: IdText | None = None
    isLogin: Annotated[str, StringConstraints(max_length=5)] | None = None


class CompatData(BaseModel):
    data: str
