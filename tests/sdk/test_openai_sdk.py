"""The official OpenAI Python SDK against a real `agora provider` process.

Set AGORA_BIN to the `agora` binary; AGORA_TEST_DATA to the data folder holding the default
model (default ~/.cache/agora-test, shared with the Rust tests so the model is fetched once).
"""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

MODEL = "SmolLM2-135M-Instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url():
    binary = os.environ["AGORA_BIN"]
    data = os.environ.get("AGORA_TEST_DATA", str(Path.home() / ".cache/agora-test"))
    port = free_port()
    proc = subprocess.Popen(
        [binary, "provider", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
         "--context", "1024", "--parallel", "4"],
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, "provider exited during start-up"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("provider did not become healthy")
    yield url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, "provider did not shut down cleanly on SIGTERM"


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="any-key-works")


def test_models_list_names_the_default_model(client):
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids


def test_non_streaming_completion(client):
    res = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    choice = res.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert res.usage.completion_tokens >= 1
    assert res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens
    # Greedy is deterministic: the same request gives the same answer.
    again = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    assert again.choices[0].message.content == choice.message.content


def test_streaming_completion_with_usage(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text.strip()
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens >= 1
    non_stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=24,
        temperature=0,
    )
    assert non_stream.choices[0].message.content == text


def test_logprobs(client):
    res = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=4,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    content = res.choices[0].logprobs.content
    assert len(content) == res.usage.completion_tokens
    assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404
    assert err.value.body["code"] == "model_not_found"


def test_oversized_prompt_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 5000}], max_tokens=8
        )
    assert err.value.status_code == 400
    assert err.value.body["code"] == "context_length_exceeded"


def test_malformed_body_is_400_in_openai_shape(base_url, client):
    res = httpx.post(
        f"{base_url}/v1/chat/completions",
        content=b'{"model": "SmolLM2-135M-Instruct", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert res.status_code == 400
    body = res.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]
    # The server keeps serving.
    assert MODEL in [m.id for m in client.models.list()]
