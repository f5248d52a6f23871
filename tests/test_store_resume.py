"""Issue 16.1: a resumed turn's prompt ends with its own question, and no prompt pairs a question
with another question's answer, against a real server."""

from __future__ import annotations

from turnstate import Store


def _shape(turn_messages: object) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in turn_messages]  # type: ignore[attr-defined]


async def test_resumed_turn_answers_its_own_question(store: Store, session_id: str) -> None:
    a = await store.begin_turn(session_id, "What is 2+2?", message_id="qa")
    assert await store.abort_turn(a)  # the model failed
    b = await store.begin_turn(session_id, "Capital of France?", message_id="qb")
    # B's prompt has no dangling A?: A is unanswered, so it is left out (it stays in history)
    assert _shape(b.messages) == [("user", "Capital of France?")]
    await store.finish_turn(b, "Paris.")
    a2 = await store.begin_turn(session_id, "What is 2+2?", message_id="qa")
    assert a2.resumed and a2.seq == a.seq
    # A's prompt ends with A's question; B's later pair is not in it
    assert _shape(a2.messages) == [("user", "What is 2+2?")]
    await store.finish_turn(a2, "4.")
    history = [(m.role, m.content) for m in await store.history(session_id)]
    assert history == [
        ("user", "What is 2+2?"),
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("assistant", "4."),
    ]
    # later prompts read the late reply as the answer to its own question
    c = await store.begin_turn(session_id, "And 3+3?", message_id="qc")
    assert _shape(c.messages) == [
        ("user", "What is 2+2?"),
        ("assistant", "4."),
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "And 3+3?"),
    ]
    assert [m.reply_to for m in c.messages if m.role == "assistant"] == [a.seq, b.seq]


async def test_unanswered_question_stays_out_of_later_prompts(store: Store, session_id: str) -> None:
    lost = await store.begin_turn(session_id, "never answered", message_id="q1")
    await store.abort_turn(lost)
    await store.append(session_id, "system", "a note")
    d = await store.begin_turn(session_id, "next", message_id="q2")
    assert _shape(d.messages) == [("system", "a note"), ("user", "next")]
    assert [m.content for m in await store.history(session_id)] == ["never answered", "a note", "next"]
