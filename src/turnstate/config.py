"""Settings: the one place the environment is read (variables prefixed `TURNSTATE_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from turnstate.types import Policy


def default_data_dir() -> Path:
    """Where embedded servers keep their data, so a restart keeps conversations."""
    return Path.home() / ".local" / "share" / "turnstate"


class Settings(BaseSettings):
    """Every knob, with the article's defaults (20-message window, 50 kept, 24 h sliding TTL)."""

    model_config = SettingsConfigDict(env_prefix="TURNSTATE_", extra="ignore", frozen=True)

    redis_url: SecretStr | None = Field(
        default=None, description="redis://, rediss:// or unix:// URL; unset: an embedded Valkey"
    )
    data_dir: Path = Field(default_factory=default_data_dir, description="embedded servers' data")
    key_prefix: str = Field(default="ts", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    tenant: str = Field(default="default", description="tenant used when a call names none")
    window_messages: int = Field(default=20, ge=1, le=10_000)
    window_tokens: int = Field(default=8_000, ge=1)
    max_messages: int = Field(default=50, ge=1, le=100_000)
    ttl_seconds: int = Field(default=86_400, ge=1)
    summary_every: int = Field(default=10, ge=1)
    policy: Policy = Policy.QUEUE
    lease_seconds: float = Field(default=60.0, gt=0)
    queue_wait_seconds: float = Field(default=60.0, ge=0)
    max_content_bytes: int = Field(default=32_768, ge=1)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _window_fits(self) -> Settings:
        if self.window_messages > self.max_messages:
            raise ValueError("window_messages must not exceed max_messages")
        return self
