"""The official `openai` Python client against orc's OpenAI-compatible routes.

Run by tests/openai_client.rs as `python3 openai_client.py BASE_URL`, where BASE_URL
ends in `/v1` and serves the models `fake-gpt` (chat) and `embedder` (embeddings) in
front of orc's fake provider. Prints `ok: <step>` for each step and `all ok` at the end;
any failure raises, so the exit status is not 0.
"""

import math
import sys

import openai


def main(base_url: str) -> None:
    # No retries: an error must surface as the status orc answered, at once.
    client = openai.OpenAI(base_url=base_url, api_key="sk-not-checked", max_retries=0, timeout=30)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello from python"},
    ]

    answer = client.chat.completions.create(model="fake-gpt", messages=messages, max_tokens=50)
    assert answer.object == "chat.completion", answer
    assert answer.model == "fake-gpt", answer
    assert answer.choices[0].message.role == "assistant", answer
    assert answer.choices[0].message.content == "echo: hello from python", answer
    assert answer.choices[0].finish_reason == "stop", answer
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0, usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
    print("ok: chat")

    raw = client.chat.completions.with_raw_response.create(model="fake-gpt", messages=messages, max_tokens=50)
    assert raw.headers.get("x-orc-cache") == "hit", dict(raw.headers)
    assert raw.parse().choices[0].message.content == "echo: hello from python"
    print("ok: cache hit")

    stream = client.chat.completions.create(
        model="fake-gpt",
        messages=[{"role": "user", "content": "one two three four five six"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, streamed_usage, chunks = [], None, None, 0
    for chunk in stream:
        chunks += 1
        assert chunk.object == "chat.completion.chunk", chunk
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            streamed_usage = chunk.usage
    assert "".join(pieces) == "echo: one two three four five six", pieces
    assert chunks > 3, chunks
    assert finish == "stop", finish
    assert streamed_usage is not None and streamed_usage.completion_tokens > 0, streamed_usage
    print("ok: stream")

    # The client asks for base64 by default and decodes it; floats must agree.
    default = client.embeddings.create(model="embedder", input=["alpha", "beta"])
    floats = client.embeddings.create(model="embedder", input=["alpha", "beta"], encoding_format="float")
    assert [d.index for d in default.data] == [0, 1], default
    assert default.model == "embedder", default
    for a, b in zip(default.data, floats.data):
        assert len(a.embedding) == len(b.embedding) > 0, (a, b)
        assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(a.embedding, b.embedding))
    assert default.data[0].embedding != default.data[1].embedding
    print("ok: embeddings")

    ids = [m.id for m in client.models.list()]
    assert ids[-1] == "auto" and "fake-gpt" in ids and "embedder" in ids, ids
    assert client.models.retrieve("fake-gpt").id == "fake-gpt"
    print("ok: models")

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("an unknown model answered")
    except openai.NotFoundError as error:
        assert error.status_code == 404, error
        assert error.code == "model_not_found", error.body
        assert "fake-gpt" in error.message, error.message
    print("ok: not found")

    try:
        client.chat.completions.create(model="fake-gpt", messages=messages, n=2)
        raise AssertionError("n=2 was accepted")
    except openai.BadRequestError as error:
        assert error.param == "n", error.body
    print("ok: bad request")

    try:
        broken = client.chat.completions.create(
            model="fake-gpt",
            messages=[{"role": "user", "content": "[[fake:truncate]] one two three four five six"}],
            stream=True,
        )
        for _ in broken:
            pass
        raise AssertionError("a broken stream ended well")
    except openai.APIError as error:
        assert not isinstance(error, openai.APIStatusError), error
        assert "fake-gpt" in error.message, error.message
    print("ok: stream error")

    print("all ok")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: openai_client.py BASE_URL")
    main(sys.argv[1])
