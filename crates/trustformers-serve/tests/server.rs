//! The server end to end on loopback, on an ephemeral port, with the tiny fixtures: the
//! llama fixture with a character tokenizer and a chat template (`tests/fixtures/
//! serve_chat`), and the BERT fixture as the embedding model. Every load here is bounded in
//! count and time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trustformers::generation::generate_text;
use trustformers::pipelines::{EmbedParams, SentenceTransformer};
use trustformers::tokenizers::chat::{ChatOptions, Message};
use trustformers::{LoadOptions, LoadedModel};
use trustformers_serve::{router, AppState, EngineOptions, ServeOptions};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The llama fixture with a context of `context` tokens, the character tokenizer and the
/// chat template, in `dir`.
fn chat_model(dir: &Path, context: usize) -> PathBuf {
    let model = dir.join("chat");
    std::fs::create_dir_all(&model).unwrap();
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("llama/config.json")).unwrap(),
    )
    .unwrap();
    config["max_position_embeddings"] = context.into();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        fixtures().join("llama/model.safetensors"),
        model.join("model.safetensors"),
    )
    .unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("serve_chat").join(f), model.join(f)).unwrap();
    }
    model
}

struct Server {
    base: String,
    state: Arc<AppState>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Server {
    /// A server on 127.0.0.1:0; `load` false leaves the models unloaded.
    async fn start(configure: impl FnOnce(&mut ServeOptions), load: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let model = chat_model(dir.path(), 1 << 16);
        let mut options = ServeOptions::new(model.to_str().unwrap());
        options.embedding_model = Some(fixtures().join("bert_base").to_str().unwrap().into());
        configure(&mut options);
        let state = AppState::new(options);
        if load {
            let s = state.clone();
            tokio::task::spawn_blocking(move || s.load())
                .await
                .unwrap()
                .unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            state,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The `data:` payloads of a streamed response, `[DONE]` included.
    async fn stream(&self, path: &str, body: Value) -> Vec<String> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let text = r.text().await.unwrap();
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// What the library's own generation gives for one user message, greedy.
fn reference_reply(path: &Path, text: &str, max_new_tokens: usize) -> String {
    let loaded = LoadedModel::from_path(path, &LoadOptions::default()).unwrap();
    let prompt = loaded
        .tokenizer
        .apply_chat_template(
            &[Message::new("user", text)],
            &ChatOptions {
                add_generation_prompt: true,
                ..Default::default()
            },
        )
        .unwrap();
    let ids = loaded.tokenizer.encode_ids(&prompt, false).unwrap();
    let mut config = loaded.generation.clone();
    config.max_new_tokens = max_new_tokens;
    generate_text(&*loaded.model, &loaded.tokenizer, &ids, &config, |_| true)
        .unwrap()
        .text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_until_the_models_load_then_every_endpoint_answers() {
    let server = Server::start(|_| {}, false).await;
    let (status, body) = server.get("/health").await;
    assert_eq!((status, body.contains("loading")), (503, true));
    let (status, body) = server
        .post("/v1/chat/completions", json!({"messages": user("hi")}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["type"], "service_unavailable");

    let s = server.state.clone();
    tokio::task::spawn_blocking(move || s.load())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.get("/health").await.0, 200);

    let (status, models) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    let chat_id = models["data"][0]["id"].as_str().unwrap().to_owned();
    let embed_id = models["data"][1]["id"].as_str().unwrap().to_owned();
    assert!(chat_id.ends_with("chat") && embed_id.ends_with("bert_base"));

    // Chat, whole: the library's greedy reply for the same message.
    let path = PathBuf::from(&chat_id);
    let want = reference_reply(&path, "hello", 12);
    let (status, body) = server
        .post(
            "/v1/chat/completions",
            json!({"model": chat_id, "messages": user("hello"), "max_tokens": 12, "temperature": 0}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], want.as_str());
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    let reason = body["choices"][0]["finish_reason"].as_str().unwrap();
    assert!(reason == "length" || reason == "stop");

    // Chat, streamed: the same text in pieces, a finish chunk, the usage chunk, [DONE].
    let events = server
        .stream(
            "/v1/chat/completions",
            json!({"messages": user("hello"), "max_tokens": 12, "temperature": 0, "stream": true,
                   "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, want);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], reason);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], *usage);

    // Text completions: echo, and two sampled choices with logprobs.
    let (status, body) = server
        .post(
            "/v1/completions",
            json!({"prompt": "the fox", "max_tokens": 5, "echo": true, "n": 2, "temperature": 1.0,
                   "seed": 3, "logprobs": 2}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert!(c["text"].as_str().unwrap().starts_with("the fox"));
        let lp = &c["logprobs"];
        let n = lp["token_logprobs"].as_array().unwrap().len();
        assert!((1..=5).contains(&n));
        assert_eq!(lp["tokens"].as_array().unwrap().len(), n);
        assert!(lp["top_logprobs"][0].as_object().unwrap().len() <= 2);
        // Offsets count from the start of the text, echoed prompt included.
        assert_eq!(lp["text_offset"][0], "the fox".len());
    }

    // Embeddings: the pipeline's vectors, as floats and as base64.
    let st =
        SentenceTransformer::from_pretrained(fixtures().join("bert_base"), &LoadOptions::default())
            .unwrap();
    let want = st
        .encode(&["hello world", "the quick fox"], &EmbedParams::default())
        .unwrap();
    let (status, body) = server
        .post(
            "/v1/embeddings",
            json!({"input": ["hello world", "the quick fox"], "model": embed_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (i, w) in want.iter().enumerate() {
        let got: Vec<f32> = serde_json::from_value(body["data"][i]["embedding"].clone()).unwrap();
        assert_eq!(&got, w);
    }
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let (_, body) = server
        .post(
            "/v1/embeddings",
            json!({"input": "hello world", "encoding_format": "base64"}),
        )
        .await;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got, want[0]);

    // Metrics count the requests and the tokens.
    let (status, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(
            "trustformers_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 2"
        ),
        "{text}"
    );
    assert!(server.metric("trustformers_generated_tokens_total").await > 0.0);
    assert!(text.contains("trustformers_time_to_first_token_seconds_count"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors() {
    let server = Server::start(
        |o| {
            o.max_body_bytes = 4096;
            o.ctx_size = Some(100);
        },
        true,
    )
    .await;
    let raw = |body: &'static str| {
        server
            .client
            .post(format!("{}/v1/chat/completions", server.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let check = |status: u16, body: &Value, want_status: u16, param: Option<&str>| {
        assert_eq!(status, want_status, "{body}");
        let e = &body["error"];
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(e["type"].is_string(), "{body}");
        assert_eq!(e["param"].as_str(), param, "{body}");
    };
    let r = raw("{not json").await.unwrap();
    let status = r.status().as_u16();
    check(status, &r.json().await.unwrap(), 400, None);
    let r = raw("{\"messages\": \"hello\"}").await.unwrap();
    let status = r.status().as_u16();
    check(status, &r.json().await.unwrap(), 400, Some("messages"));
    let r = raw(
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": \"many\"}",
    )
    .await
    .unwrap();
    let status = r.status().as_u16();
    check(status, &r.json().await.unwrap(), 400, Some("max_tokens"));

    let chat = |extra: Value| {
        let mut body = json!({"messages": user("hi")});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        server.post("/v1/chat/completions", body)
    };
    let (s, b) = chat(json!({"model": "no-such-model"})).await;
    check(s, &b, 404, Some("model"));
    assert_eq!(b["error"]["code"], "model_not_found");
    let (s, b) = chat(json!({"n": 0})).await;
    check(s, &b, 400, Some("n"));
    let (s, b) = chat(json!({"n": 1000})).await;
    check(s, &b, 400, Some("n"));
    let (s, b) = chat(json!({"logprobs": true, "top_logprobs": 21})).await;
    check(s, &b, 400, Some("top_logprobs"));
    let (s, b) = chat(json!({"temperature": 3})).await;
    check(s, &b, 400, Some("temperature"));
    let (s, b) = chat(json!({"logit_bias": {"abc": 1}})).await;
    check(s, &b, 400, Some("logit_bias"));
    let (s, b) = chat(json!({"messages": []})).await;
    check(s, &b, 400, Some("messages"));
    // Prompt + max_tokens beyond --ctx-size: both numbers named.
    let (s, b) = chat(json!({"max_tokens": 99})).await;
    check(s, &b, 400, Some("max_tokens"));
    let m = b["error"]["message"].as_str().unwrap();
    assert!(m.contains("99") && m.contains("100"), "{m}");
    let unsupported = json!({"type": "json_schema", "json_schema": {"name": "x", "schema":
        {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}}}}});
    let (s, b) = chat(json!({ "response_format": unsupported })).await;
    check(s, &b, 400, Some("response_format"));
    assert!(b["error"]["message"].as_str().unwrap().contains("anyOf"));
    let (s, b) = chat(json!({"response_format": {"type": "xml"}})).await;
    check(s, &b, 400, Some("response_format"));
    let (s, b) = server
        .post(
            "/v1/embeddings",
            json!({"input": "x", "encoding_format": "hex"}),
        )
        .await;
    check(s, &b, 400, Some("encoding_format"));
    let (s, b) = server.post("/v1/embeddings", json!({"input": []})).await;
    check(s, &b, 400, Some("input"));

    // Over the body limit: 413.
    let big = format!(
        "{{\"messages\": [{{\"role\": \"user\", \"content\": \"{}\"}}]}}",
        "a".repeat(8192)
    );
    let r = server
        .client
        .post(format!("{}/v1/chat/completions", server.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    check(status, &r.json().await.unwrap(), 413, None);
    let (status, body) = server.get("/no/such/route").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_guards_v1_but_not_health_or_metrics() {
    let server = Server::start(|o| o.api_key = Some("sesame".into()), true).await;
    let url = format!("{}/v1/models", server.base);
    let r = server.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let r = server
        .client
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = server
        .client
        .get(&url)
        .bearer_auth("sesame")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(server.get("/health").await.0, 200);
    assert_eq!(server.get("/metrics").await.0, 200);
    let (status, page) = server.get("/").await;
    assert!(status == 200 && page.contains("/v1/chat/completions"));
}

/// One sequence at a time and one waiting: the third request is refused with 429 and
/// `Retry-After`; a client that goes away mid-stream has its sequence dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_and_a_gone_client_is_cancelled() {
    let server = Server::start(
        |o| {
            o.engine = EngineOptions {
                max_batch_size: 1,
                max_queue: 1,
                ..EngineOptions::default()
            }
        },
        true,
    )
    .await;
    // Long enough (tens of seconds) that only the clients' going away ends them.
    let long = json!({"messages": user("hello"), "max_tokens": 60000, "stream": true,
                      "temperature": 1.0, "logit_bias": {"6": -100}});
    let send = || {
        server
            .client
            .post(format!("{}/v1/chat/completions", server.base))
            .json(&long)
            .send()
    };
    // The first runs (its first chunk has arrived), the second waits, the third is refused.
    let wait_for = |metric: &'static str, what: &'static str| {
        let server = &server;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.metric(metric).await < 1.0 {
                assert!(Instant::now() < deadline, "{what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    let mut first_body = first.bytes_stream();
    first_body.next().await.unwrap().unwrap();
    wait_for(
        "trustformers_active_sequences",
        "the first request never ran",
    )
    .await;
    let second = tokio::spawn(send());
    wait_for(
        "trustformers_queued_requests",
        "the second request never queued",
    )
    .await;
    let third = send().await.unwrap();
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // Both clients go away: their sequences end and their caches are freed.
    drop(first_body);
    // Aborted if still waiting for its headers; dropped with its response otherwise.
    second.abort();
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let active = server.metric("trustformers_active_sequences").await;
        let queued = server.metric("trustformers_queued_requests").await;
        let bytes = server.metric("trustformers_kv_cache_bytes").await;
        if active == 0.0 && queued == 0.0 && bytes == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {active} active, {queued} queued"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let generated = server.metric("trustformers_generated_tokens_total").await;
    assert!(
        generated < 8000.0,
        "the sequences ran to the end: {generated}"
    );
}

/// Greedy output does not depend on what else runs: the same reply alone and beside 7
/// other requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_replies_do_not_depend_on_concurrent_requests() {
    let server = Arc::new(Server::start(|_| {}, true).await);
    let body = |i: usize| {
        json!({"messages": user(["hello", "the fox", "how are you", "world"][i % 4]),
               "max_tokens": 16, "temperature": 0})
    };
    let mut alone = Vec::new();
    for i in 0..4 {
        let (status, b) = server.post("/v1/chat/completions", body(i)).await;
        assert_eq!(status, 200);
        alone.push(b["choices"][0]["message"]["content"].clone());
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let server = server.clone();
            let b = body(i);
            tokio::spawn(async move { server.post("/v1/chat/completions", b).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, b) = t.await.unwrap();
        assert_eq!(status, 200, "{b}");
        assert_eq!(
            b["choices"][0]["message"]["content"],
            alone[i % 4],
            "request {i}"
        );
    }
}

/// A prompt that begins like a finished one starts from its KV cache: the reply is the
/// one computed from scratch, and the metrics count the reused tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_prefix_is_taken_from_the_cache() {
    let server = Server::start(
        |o| {
            o.engine = EngineOptions {
                prefix_cache_entries: 4,
                ..EngineOptions::default()
            }
        },
        true,
    )
    .await;
    let reused = || server.metric("trustformers_prefix_cache_tokens_total");
    let ask = |text: &'static str| {
        server.post(
            "/v1/chat/completions",
            json!({"messages": user(text), "max_tokens": 8, "temperature": 0}),
        )
    };
    let text = "hello world, how are you? the quick brown fox";
    let (_, first) = ask(text).await;
    assert_eq!(reused().await, 0.0);
    let (_, again) = ask(text).await;
    assert!(reused().await >= 16.0, "nothing was reused");
    assert_eq!(
        again["choices"][0]["message"],
        first["choices"][0]["message"]
    );
    // A conversation that goes on from it: the same reply as a server without the cache.
    let longer = json!({"messages": [
        {"role": "user", "content": text},
        {"role": "assistant", "content": first["choices"][0]["message"]["content"]},
        {"role": "user", "content": "how are you"}
    ], "max_tokens": 8, "temperature": 0});
    let before = reused().await;
    let (status, cached) = server.post("/v1/chat/completions", longer.clone()).await;
    assert_eq!(status, 200, "{cached}");
    assert!(reused().await > before);
    let plain = Server::start(|_| {}, true).await;
    let (_, fresh) = plain.post("/v1/chat/completions", longer).await;
    assert_eq!(
        cached["choices"][0]["message"],
        fresh["choices"][0]["message"]
    );
    assert_eq!(
        plain.metric("trustformers_prefix_cache_tokens_total").await,
        0.0
    );
}
