"""`trustformers serve` against the official OpenAI Python client, with the real models.

Run by .ci/run after the Rust tests (which build target/debug/trustformers), in a venv with
`openai` installed:

    python tests/python/test_openai_server.py [path/to/trustformers]

The server runs SmolLM2-135M-Instruct and all-MiniLM-L6-v2 (tools/fetch_models.sh) on an
ephemeral loopback port with an API key. Checked: chat, whole and streamed, equals
`trustformers generate --json` (greedy) for the same message; embeddings equal
`trustformers embed` (cosine >= 0.99999); a wrong key raises AuthenticationError; an unknown
model raises NotFoundError; json_schema and json_object replies parse (and fit the schema);
SIGTERM ends the server with status 0.
"""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import openai

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "debug", "trustformers")
KEY = "ci-test-key"
QUESTIONS = [
    "What is 2+2?",
    "What is the capital of France?",
    "Write one sentence about the sea.",
]
MAX_TOKENS = 24


def start_server():
    proc = subprocess.Popen(
        [BIN, "serve", "--port", "0", "--embedding-model", "all-minilm-l6-v2", "--api-key", KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"the server did not print its address: {line!r}")
    base = line.split("http://", 1)[1].split()[0]
    base = "http://" + base
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as r:
                if r.status == 200:
                    return proc, base
        except Exception:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise SystemExit("the server did not become healthy")
        time.sleep(0.25)


def generate(question):
    out = subprocess.run(
        [BIN, "generate", "--json", "--max-new-tokens", str(MAX_TOKENS), question],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def embed(texts):
    out = subprocess.run([BIN, "embed", "--json", *texts], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["embeddings"]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def main():
    proc, base = start_server()
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=120)
        ids = [m.id for m in client.models.list().data]
        check(ids == ["smollm2-135m-instruct", "all-minilm-l6-v2"], f"models: {ids}")

        for q in QUESTIONS:
            want = generate(q)
            messages = [{"role": "user", "content": q}]
            r = client.chat.completions.create(
                model="smollm2-135m-instruct", messages=messages, temperature=0, max_tokens=MAX_TOKENS
            )
            got = r.choices[0].message.content
            check(got == want["text"], f"chat {q!r}: {got!r} == generate's {want['text']!r}")
            check(r.usage.prompt_tokens == want["prompt_tokens"], f"prompt tokens {r.usage.prompt_tokens}")
            reason = {"eos": "stop", "length": "length"}.get(want["finish_reason"], want["finish_reason"])
            check(r.choices[0].finish_reason == reason, f"finish_reason {r.choices[0].finish_reason}")

            stream = client.chat.completions.create(
                model="smollm2-135m-instruct",
                messages=messages,
                temperature=0,
                max_tokens=MAX_TOKENS,
                stream=True,
                stream_options={"include_usage": True},
            )
            pieces, usage = [], None
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for c in chunk.choices:
                    if c.delta.content:
                        pieces.append(c.delta.content)
            check("".join(pieces) == want["text"], f"streamed chat {q!r}")
            check(usage is not None and usage.completion_tokens == len(want["token_ids"]), f"stream usage {usage}")

        texts = ["A man is eating food.", "The new movie is awesome.", "hello"]
        want = embed(texts)
        r = client.embeddings.create(model="all-minilm-l6-v2", input=texts)
        got = [d.embedding for d in r.data]
        worst = min(cosine(a, b) for a, b in zip(got, want))
        check(len(got) == len(texts) and worst >= 0.99999, f"embeddings: worst cosine {worst:.7f}")
        # The client's default asks for base64 and decodes it; ask for floats too.
        r = client.embeddings.create(model="all-minilm-l6-v2", input=texts[0], encoding_format="float")
        check(cosine(r.data[0].embedding, want[0]) >= 0.99999, "embeddings as floats")

        # Structured outputs: the reply parses, and fits the schema.
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "country": {"type": "string"},
                "population": {"type": "integer"},
                "capital": {"type": "boolean"},
            },
            "required": ["name", "country", "population", "capital"],
            "additionalProperties": False,
        }
        r = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "Describe Paris as JSON."}],
            temperature=0,
            max_tokens=200,
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        )
        content = r.choices[0].message.content
        try:
            city = json.loads(content)
            fits = (
                set(city) == set(schema["properties"])
                and isinstance(city["name"], str)
                and isinstance(city["country"], str)
                and isinstance(city["population"], int)
                and isinstance(city["capital"], bool)
            )
        except json.JSONDecodeError:
            fits = False
        check(fits and r.choices[0].finish_reason == "stop", f"json_schema reply fits the schema: {content!r}")
        r = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "Reply with a JSON object with the keys name and age for a cat."}],
            temperature=0,
            max_tokens=300,
            response_format={"type": "json_object"},
        )
        content = r.choices[0].message.content
        try:
            ok = isinstance(json.loads(content), dict)
        except json.JSONDecodeError:
            ok = False
        check(ok and r.choices[0].finish_reason == "stop", f"json_object reply parses: {content!r}")

        bad = openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0)
        try:
            bad.models.list()
            check(False, "a wrong key is refused")
        except openai.AuthenticationError:
            check(True, "a wrong key raises AuthenticationError")
        try:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            check(False, "an unknown model is refused")
        except openai.NotFoundError:
            check(True, "an unknown model raises NotFoundError")
    finally:
        # SIGTERM with a long stream in flight: the stream still ends properly ([DONE]),
        # within the grace period, and the server exits with status 0.
        got = {}

        def long_stream():
            body = {"messages": [{"role": "user", "content": "Tell a very long story."}],
                    "max_tokens": 4000, "stream": True, "logit_bias": {"2": -100}}
            req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": "Bearer " + KEY})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    for raw in r:
                        line = raw.decode().strip()
                        if line.startswith("data: ") and "first" not in got:
                            got["first"] = time.time()
                        if line == "data: [DONE]":
                            got["done"] = time.time()
            except Exception as e:  # noqa: BLE001 - reported below
                got["error"] = repr(e)

        streamer = threading.Thread(target=long_stream)
        streamer.start()
        deadline = time.time() + 60
        while "first" not in got and "error" not in got and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        signalled = time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
        streamer.join(timeout=15)
        ended = got.get("done")
        check(ended is not None and ended - signalled < 10,
              f"SIGTERM ends a stream in flight with [DONE] ({got})")
        check(code == 0, f"SIGTERM ends the server with status 0 (got {code})")

    if failures:
        raise SystemExit(f"{len(failures)} check(s) failed")
    print("all OpenAI client checks passed")


if __name__ == "__main__":
    main()
