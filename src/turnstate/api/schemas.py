"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from turnstate.types import Message, SessionInfo


class TurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="the user's message")
    message_id: str | None = Field(default=None, description="client id: a retry with it never appends twice")
    stream: bool = Field(default=False, description="answer as server-sent events")
    user_id: str | None = Field(default=None, description="whose long-term memory this turn uses; default: the session")


class MessageOut(BaseModel):
    seq: int
    id: str
    role: str
    content: str
    tokens: int
    ts: int = Field(description="server time, ms since the epoch")
    reply_to: int | None = None

    @classmethod
    def of(cls, m: Message) -> MessageOut:
        return cls(seq=m.seq, id=m.id, role=m.role, content=m.content, tokens=m.tokens, ts=m.ts, reply_to=m.reply_to)


class TurnContext(BaseModel):
    messages: int = Field(description="messages in the window sent to the model")
    summary: bool = Field(description="whether a summary was part of the prompt")
    facts: list[str] = Field(default=[], description="facts recalled into the prompt")


class TurnResponse(BaseModel):
    session_id: str
    message_id: str
    seq: int = Field(description="seq of the stored user message")
    resumed: bool = Field(description="this message id had been stored before")
    reply: MessageOut
    context: TurnContext
    state_ms: float = Field(description="time spent on the state store")
    model_ms: float = Field(description="time spent in the model")


class MessagesPage(BaseModel):
    session_id: str
    messages: list[MessageOut]
    next_after_seq: int | None = Field(description="pass as after_seq for the next page; null at the end")


class SessionOut(BaseModel):
    session_id: str
    last_seq: int
    hot: int
    archived: int
    summary: str | None
    summary_upto: int
    ttl_seconds: float | None
    busy: bool

    @classmethod
    def of(cls, info: SessionInfo) -> SessionOut:
        return cls(
            session_id=info.session,
            last_seq=info.last_seq,
            hot=info.hot,
            archived=info.archived,
            summary=info.summary,
            summary_upto=info.summary_upto,
            ttl_seconds=info.ttl_seconds,
            busy=info.lease_held,
        )


class ChatCompletionMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request that matters here; other fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatCompletionMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(default=None, description="names the session unless X-Session-Id does")
