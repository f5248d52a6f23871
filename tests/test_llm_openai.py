"""OpenAIModel against a local stand-in for the OpenAI API: the SDK's real HTTP, retries and timeouts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from pydantic import SecretStr

from tests.openai_standin import OpenAIStandIn
from turnstate.config import Settings
from turnstate.errors import ModelError
from turnstate.llm import OfflineModel, PromptMessage, complete, model_from_settings
from turnstate.llm.openai import OpenAIModel

API_KEY = "sk-test-0123456789abcdef"
MODEL_ENV = ("OPENAI_API_KEY", "TURNSTATE_OPENAI_API_KEY", "OPENAI_BASE_URL", "TURNSTATE_OPENAI_BASE_URL")
PROMPT: list[PromptMessage] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello"},
]


@pytest.fixture(scope="module")
def standin_server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
def standin(standin_server: OpenAIStandIn) -> Iterator[OpenAIStandIn]:
    standin_server.reset()
    yield standin_server
    standin_server.reset()


@pytest.fixture
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)


def make_model(standin: OpenAIStandIn, *, timeout: float = 5.0, max_retries: int = 1) -> OpenAIModel:
    return OpenAIModel(
        "test-model", api_key=API_KEY, base_url=standin.base_url, timeout=timeout, max_retries=max_retries
    )


async def failure(model: OpenAIModel, messages: list[PromptMessage] = PROMPT) -> ModelError:
    """The ModelError a completion raises (failing the test if it succeeds)."""
    try:
        with pytest.raises(ModelError) as caught:
            await complete(model, messages)
    finally:
        await model.aclose()
    return caught.value


async def collect(deltas: AsyncIterator[str], into: list[str]) -> None:
    async for delta in deltas:
        into.append(delta)


# -- replies -----------------------------------------------------------------------------------


async def test_streamed_deltas_assemble_the_reply(standin: OpenAIStandIn) -> None:
    standin.reply = "The quick brown fox jumps over the lazy dog."
    model = make_model(standin)
    deltas = [delta async for delta in model.stream(PROMPT)]
    await model.aclose()
    assert len(deltas) > 3
    assert "".join(deltas) == standin.reply
    assert model.name == "openai:test-model"


async def test_messages_reach_the_endpoint_intact(standin: OpenAIStandIn) -> None:
    messages: list[PromptMessage] = [
        {"role": "system", "content": "Summary of the conversation so far: they met in Zürich."},
        {"role": "user", "content": "Line one\nline two, with “quotes” and emoji 🚀"},
        {"role": "assistant", "content": "  leading and trailing spaces  "},
        {"role": "user", "content": '{"looks": "like json"}'},
    ]
    model = make_model(standin)
    assert await complete(model, messages) == standin.reply
    await model.aclose()
    [request] = standin.requests
    assert request.path == "/v1/chat/completions"
    assert request.messages == messages
    assert (request.body["model"], request.body["stream"]) == ("test-model", True)


async def test_api_key_is_sent_as_bearer_token(standin: OpenAIStandIn) -> None:
    model = make_model(standin)
    await complete(model, PROMPT)
    await model.aclose()
    assert standin.requests[0].authorization == f"Bearer {API_KEY}"


# -- failures ----------------------------------------------------------------------------------


async def test_rate_limit_is_retried_by_the_sdk(standin: OpenAIStandIn) -> None:
    standin.fail(429, times=1)
    model = make_model(standin, max_retries=1)
    started = time.monotonic()
    assert await complete(model, PROMPT) == standin.reply
    await model.aclose()
    assert len(standin.requests) == 2
    assert time.monotonic() - started < 2  # Retry-After honoured, not a long backoff


async def test_persistent_rate_limit_reports_retry_after(standin: OpenAIStandIn) -> None:
    standin.fail(429, times=5, retry_after="7")
    error = await failure(make_model(standin, max_retries=0))
    assert (error.kind, error.status, error.retry_after) == ("rate_limited", 429, 7.0)
    assert error.transient


async def test_persistent_server_error_is_unavailable_after_the_retries(standin: OpenAIStandIn) -> None:
    standin.fail(500, times=5)
    error = await failure(make_model(standin, max_retries=1))
    assert (error.kind, error.status) == ("unavailable", 500)
    assert len(standin.requests) == 2  # max_retries + 1
    assert "test-model" in str(error) and "HTTP 500" in str(error)


async def test_bad_credentials_are_auth_and_the_key_stays_secret(standin: OpenAIStandIn) -> None:
    standin.fail(401, times=5)  # the stand-in's message echoes the key back
    error = await failure(make_model(standin, max_retries=1))
    assert (error.kind, error.status) == ("auth", 401)
    assert len(standin.requests) == 1  # not retried
    assert standin.requests[0].authorization == f"Bearer {API_KEY}"
    assert API_KEY not in str(error)
    assert error.__cause__ is None and error.__suppress_context__
    assert not error.transient


async def test_rejected_request_is_bad_request(standin: OpenAIStandIn) -> None:
    standin.fail(400, message="This model's maximum context length is 8 tokens.")
    error = await failure(make_model(standin))
    assert (error.kind, error.status) == ("bad_request", 400)
    assert "maximum context length" in str(error)


async def test_stall_before_the_reply_is_a_timeout(standin: OpenAIStandIn) -> None:
    standin.stall(30)
    started = time.monotonic()
    error = await failure(make_model(standin, timeout=0.3, max_retries=0))
    assert error.kind == "timeout"
    assert time.monotonic() - started < 5


async def test_stall_mid_stream_is_a_timeout_after_some_deltas(standin: OpenAIStandIn) -> None:
    standin.stall(30, after_chunks=2)
    model = make_model(standin, timeout=0.3, max_retries=1)
    received: list[str] = []
    with pytest.raises(ModelError) as caught:
        await collect(model.stream(PROMPT), received)
    await model.aclose()
    assert caught.value.kind == "timeout"
    assert len(received) == 2
    assert len(standin.requests) == 1  # a broken stream is not retried: the reply was under way


async def test_dropped_connection_mid_stream_is_unavailable(standin: OpenAIStandIn) -> None:
    standin.cut_stream(after_chunks=2)
    error = await failure(make_model(standin))
    assert error.kind == "unavailable"


async def test_stream_ending_without_finish_is_unavailable(standin: OpenAIStandIn) -> None:
    standin.cut_stream(after_chunks=2, cleanly=True)
    error = await failure(make_model(standin))
    assert error.kind == "unavailable"
    assert "before the reply was finished" in str(error)


async def test_unreachable_endpoint_is_unavailable() -> None:
    with OpenAIStandIn() as gone:
        url = gone.base_url
    error = await failure(OpenAIModel("m", api_key=API_KEY, base_url=url, timeout=2, max_retries=0))
    assert error.kind == "unavailable"
    assert error.status is None
    assert API_KEY not in str(error)


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_model_env")
def test_nothing_configured_means_the_offline_model() -> None:
    assert isinstance(model_from_settings(Settings()), OfflineModel)


@pytest.mark.usefixtures("no_model_env")
async def test_a_base_url_alone_selects_an_openai_compatible_model(standin: OpenAIStandIn) -> None:
    settings = Settings(openai_base_url=standin.base_url, model="llama3.2", model_max_retries=0)
    model = model_from_settings(settings)
    assert isinstance(model, OpenAIModel)
    assert model.name == "openai:llama3.2"
    assert await complete(model, PROMPT) == standin.reply
    await model.aclose()
    assert standin.requests[0].body["model"] == "llama3.2"


@pytest.mark.usefixtures("no_model_env")
def test_an_api_key_alone_selects_openai() -> None:
    model = model_from_settings(Settings(openai_api_key=SecretStr(API_KEY)))
    assert isinstance(model, OpenAIModel)
    assert model.name == "openai:gpt-4o-mini"


@pytest.mark.usefixtures("no_model_env")
def test_settings_read_the_usual_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.setenv("TURNSTATE_MODEL", "qwen2.5")
    settings = Settings()
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == "from-openai"
    assert (settings.openai_base_url, settings.model) == ("http://localhost:11434/v1", "qwen2.5")
    monkeypatch.setenv("TURNSTATE_OPENAI_API_KEY", "from-turnstate")  # the specific one wins
    key = Settings().openai_api_key
    assert key is not None and key.get_secret_value() == "from-turnstate"
    assert API_KEY not in repr(Settings(openai_api_key=SecretStr(API_KEY)))


@pytest.mark.usefixtures("no_model_env")
def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("OPENAI_BASE_URL", " ")
    settings = Settings()
    assert (settings.openai_api_key, settings.openai_base_url) == (None, None)
    assert isinstance(model_from_settings(settings), OfflineModel)


async def test_standin_also_answers_without_streaming(standin: OpenAIStandIn) -> None:
    """The service tests reuse the stand-in with non-streaming calls too."""
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=standin.base_url, max_retries=0)
    completion = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    await client.close()
    assert completion.choices[0].message.content == standin.reply
    assert standin.requests[0].body.get("stream") in (None, False)
