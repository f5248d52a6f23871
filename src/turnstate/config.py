"""Settings: the one place the environment is read (variables prefixed `TURNSTATE_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from turnstate.types import Policy


def default_data_dir() -> Path:
    """Where embedded servers keep their data, so a restart keeps conversations."""
    return Path.home() / ".local" / "share" / "turnstate"


DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer clearly and concisely. Use the summary of earlier "
    "conversation, when one is given, as context you already know."
)


class Settings(BaseSettings):
    """Every knob, with the article's defaults (20-message window, 50 kept, 24 h sliding TTL)."""

    # populate_by_name: fields read from aliased variables (OPENAI_API_KEY) still take their name
    # as a keyword; protected_namespaces=(): `model_*` fields are ours, not pydantic's.
    model_config = SettingsConfigDict(
        env_prefix="TURNSTATE_", extra="ignore", frozen=True, populate_by_name=True, protected_namespaces=()
    )

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
    max_connections: int = Field(default=1_000, ge=1, description="connections to the server per process, at most")
    redis_retries: int = Field(
        default=5, ge=0, le=20, description="retries of a request whose connection dropped, 0.05 s to 1 s apart"
    )
    # The chat model: any OpenAI-compatible endpoint; with neither a key nor a URL, the offline model.
    model: str = Field(default="gpt-4o-mini", min_length=1, description="model name sent to the endpoint")
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TURNSTATE_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TURNSTATE_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="e.g. http://localhost:11434/v1 (Ollama); unset: api.openai.com",
    )
    model_timeout_seconds: float = Field(default=60.0, gt=0, description="per request, and per gap between deltas")
    model_max_retries: int = Field(default=2, ge=0, le=10, description="the SDK's retries on 408/409/429/5xx")
    system_prompt: str = Field(default=DEFAULT_SYSTEM_PROMPT, min_length=1)
    # The HTTP service.
    host: str = Field(default="127.0.0.1", description="address `turnstate serve` binds")
    port: int = Field(default=8000, ge=0, le=65_535)
    auth: Literal["auto", "keys", "local"] = Field(
        default="auto", description="local: no key needed; keys: a key per request; auto: local on loopback only"
    )
    api_keys: SecretStr | None = Field(default=None, description='JSON object {"<key>": "<tenant>", ...}')
    api_keys_file: Path | None = Field(default=None, description="lines of '<tenant> <key>'")
    max_request_bytes: int = Field(default=65_536, ge=1_024, description="largest HTTP request body")
    # Requests per tenant (its API key's, or the default tenant in local mode), counted in Redis so
    # every replica shares the count; limits' notation, `;` between limits; "none" or empty: off.
    # The default lets a burst of 200 requests through in any second and 100/s sustained (6000 a
    # minute): far above a person chatting, enough for an app with ~1000 users chatting at once
    # under one key, yet a runaway client is held to about a fifth of what one 2-vCPU replica
    # serves (docs/performance.md), so other tenants are still answered. Raise it per deployment.
    rate_limit: str | None = Field(
        default="200/second;6000/minute", description="per tenant, e.g. '200/second;6000/minute'; 'none': off"
    )
    # Long-term memory: facts in PostgreSQL with pgvector, embedded offline unless told otherwise.
    memory: bool = Field(default=True, description="recall facts into prompts and schedule summaries")
    recall_k: int = Field(default=5, ge=1, le=50, description="facts recalled into a prompt, at most")
    recall_budget_seconds: float = Field(default=0.25, gt=0, description="a later recall is skipped")
    recall_tokens: int = Field(default=400, ge=0, description="tokens of recalled facts in a prompt, at most")
    worker_in_service: bool = Field(default=False, description="run the memory worker inside `turnstate serve`")
    worker_concurrency: int = Field(default=4, ge=1, le=256, description="memory jobs a worker runs at once")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="what `turnstate serve` and `turnstate worker` log of turnstate's own work"
    )
    worker_redelivery_seconds: float = Field(
        default=300.0, gt=0, description="a job whose worker went silent this long is given to another"
    )
    database_url: SecretStr | None = Field(
        default=None, description="postgresql:// URL of a PostgreSQL with pgvector; unset: an embedded one"
    )
    embeddings: Literal["offline", "openai"] = Field(
        default="offline",
        description="offline: a bundled multilingual-e5-small; openai: an OpenAI-compatible embeddings endpoint",
    )
    # One OpenMP thread: with one per core, the engine's threads fight the service (and each other)
    # for the cores, and on a busy 2-vCPU machine an embedding's p99 passed 3 s, far past the recall
    # budget, against 65-311 ms with one (docs/benchmarks.md). 0: the engine's own default.
    embedding_threads: int = Field(default=1, ge=0, le=256, description="CPU threads of the offline embedder")
    embedding_model: str = Field(default="text-embedding-3-small", min_length=1, description="with embeddings=openai")
    embedding_dimensions: int | None = Field(
        default=None, ge=1, le=2_000, description="vector size; needed for models other than OpenAI's own"
    )
    embedding_base_url: str | None = Field(default=None, description="with embeddings=openai; unset: openai_base_url")
    embedding_api_key: SecretStr | None = Field(
        default=None, description="with embeddings=openai; unset: openai_api_key"
    )

    @model_validator(mode="after")
    def _window_fits(self) -> Settings:
        if self.window_messages > self.max_messages:
            raise ValueError("window_messages must not exceed max_messages")
        return self

    @model_validator(mode="after")
    def _embedding_endpoint_needs_opt_in(self) -> Settings:
        """An embeddings endpoint set while the offline embedder is selected would be silently ignored."""
        if self.embeddings == "offline" and (self.embedding_base_url or self.embedding_api_key):
            raise ValueError(
                "TURNSTATE_EMBEDDING_BASE_URL or TURNSTATE_EMBEDDING_API_KEY is set, but the embedder is the offline "
                "one: set TURNSTATE_EMBEDDINGS=openai to use that endpoint"
            )
        return self

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str | None) -> str | None:
        """A typo in the limit must fail at start-up, not be found by the first request."""
        if value is not None and value.strip().lower() not in ("", "none"):
            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"rate limit {value!r} is not like '200/second;6000/minute': {exc}") from None
        return value

    @field_validator(
        "openai_api_key", "openai_base_url", "database_url", "embedding_base_url", "embedding_api_key", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`OPENAI_API_KEY=` (set but empty, common in compose files) means no key, not an empty one."""
        if isinstance(value, str) and not value.strip():
            return None
        return value
