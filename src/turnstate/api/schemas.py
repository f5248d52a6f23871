"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from turnstate.keys import ID_PATTERN, ID_RULE, MESSAGE_ID_PATTERN, MESSAGE_ID_RULE
from turnstate.types import Message, SessionInfo

# The id rules of turnstate.keys, anchored as OpenAPI wants them, so the document tells clients
# what the store would refuse anyway (and the refusal is a schema 422 before any work is done).
ID = f"^{ID_PATTERN.pattern}$"
MESSAGE_ID = f"^{MESSAGE_ID_PATTERN.pattern}$"
# A message needs one character that Python's str.isspace() does not count (the store's "empty").
NOT_BLANK = r"[^\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"

SessionId = Annotated[str, Path(pattern=ID, description=f"session id: {ID_RULE}")]
UserId = Annotated[str, Path(pattern=ID, description=f"user id: {ID_RULE}")]
SessionQuery = Annotated[str | None, Query(pattern=ID, description=f"session id: {ID_RULE}")]
SessionHeader = Annotated[str | None, Header(pattern=ID, description=f"the session: {ID_RULE}")]
MessageIdHeader = Annotated[str | None, Header(pattern=MESSAGE_ID, description=f"message id: {MESSAGE_ID_RULE}")]
UserHeader = Annotated[str | None, Header(pattern=ID, description=f"whose memory: {ID_RULE}; default: the session")]


class TurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(
        pattern=NOT_BLANK, description="the user's message: not blank, at most max_content_bytes (32768) UTF-8 bytes"
    )
    message_id: str | None = Field(
        default=None, pattern=MESSAGE_ID, description=f"a retry with it never appends twice: {MESSAGE_ID_RULE}"
    )
    stream: bool = Field(default=False, description="answer as server-sent events")
    user_id: str | None = Field(
        default=None, pattern=ID, description=f"whose long-term memory this turn uses; default: the session; {ID_RULE}"
    )


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
    user: str | None = Field(
        default=None, pattern=ID, description=f"names the session unless X-Session-Id does: {ID_RULE}"
    )
