//! Streamed responses: the scheduler's events as server-sent events in OpenAI's chunk
//! shapes, ending with `data: [DONE]`.

use super::generation::{chat_logprobs, completion_logprobs, finish_reason, Meta};
use crate::api::Usage;
use crate::engine::Event;
use crate::error::ApiError;
use crate::tools::ToolCallStream;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use tokio::sync::mpsc::UnboundedReceiver;

pub(super) enum Kind {
    /// With tools: each choice's text goes through its tool-call filter.
    Chat {
        tools: Option<Vec<ToolCallStream>>,
    },
    Completion {
        echo: Option<String>,
    },
}

/// The state of a streamed response.
pub(super) struct Streaming {
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    kind: Kind,
    include_usage: bool,
    pending: VecDeque<SseEvent>,
    finished: usize,
    completion_tokens: usize,
    /// Completions: where the next token starts in the text (one choice is streamed).
    offset: usize,
    done: bool,
}

impl Streaming {
    fn chunk(&self, choice: Value) -> SseEvent {
        let object = match self.kind {
            Kind::Chat { .. } => "chat.completion.chunk",
            Kind::Completion { .. } => "text_completion",
        };
        let body = json!({
            "id": self.meta.id,
            "object": object,
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [choice],
            "system_fingerprint": null,
        });
        SseEvent::default().data(body.to_string())
    }

    fn start(&mut self) {
        for index in 0..self.meta.n {
            let choice = match &self.kind {
                Kind::Chat { .. } => json!({
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": null,
                    "finish_reason": null,
                }),
                Kind::Completion { echo: Some(echo) } => json!({
                    "index": index, "text": echo, "logprobs": null, "finish_reason": null,
                }),
                Kind::Completion { echo: None } => continue,
            };
            let event = self.chunk(choice);
            self.pending.push_back(event);
        }
    }

    fn on(&mut self, event: Event) {
        match event {
            Event::Token {
                index,
                text,
                logprob,
                ..
            } => {
                let text = match &mut self.kind {
                    Kind::Chat { tools: Some(tools) } => match tools.get_mut(index) {
                        Some(t) => t.push(&text),
                        None => text,
                    },
                    _ => text,
                };
                if text.is_empty() && logprob.is_none() {
                    return;
                }
                let lp = logprob.map(|lp| vec![lp]).unwrap_or_default();
                let choice = match self.kind {
                    Kind::Chat { .. } => json!({
                        "index": index,
                        "delta": {"content": text},
                        "logprobs": self.meta.logprobs.then(|| json!({"content": chat_logprobs(&self.meta, &lp)})),
                        "finish_reason": null,
                    }),
                    Kind::Completion { .. } => json!({
                        "index": index,
                        "text": text,
                        "logprobs": self.meta.logprobs.then(|| completion_logprobs(&self.meta, &lp, &mut self.offset)),
                        "finish_reason": null,
                    }),
                };
                let event = self.chunk(choice);
                self.pending.push_back(event);
            }
            Event::Finish {
                index,
                reason,
                completion_tokens,
            } => {
                self.completion_tokens += completion_tokens;
                let mut reason = finish_reason(reason);
                let calls = match &mut self.kind {
                    Kind::Chat { tools: Some(tools) } => match tools.get_mut(index) {
                        Some(t) => std::mem::take(t).finish(&format!("call_{index}")),
                        None => (String::new(), Vec::new()),
                    },
                    _ => (String::new(), Vec::new()),
                };
                let (rest, calls) = calls;
                if !rest.is_empty() {
                    let event = self.chunk(json!({
                        "index": index, "delta": {"content": rest}, "logprobs": null,
                        "finish_reason": null,
                    }));
                    self.pending.push_back(event);
                }
                if !calls.is_empty() {
                    reason = "tool_calls";
                    let calls: Vec<Value> = calls
                        .into_iter()
                        .enumerate()
                        .map(|(k, mut c)| {
                            c["index"] = k.into();
                            c
                        })
                        .collect();
                    let event = self.chunk(json!({
                        "index": index, "delta": {"tool_calls": calls}, "logprobs": null,
                        "finish_reason": null,
                    }));
                    self.pending.push_back(event);
                }
                let choice = match self.kind {
                    Kind::Chat { .. } => json!({
                        "index": index, "delta": {}, "logprobs": null,
                        "finish_reason": reason,
                    }),
                    Kind::Completion { .. } => json!({
                        "index": index, "text": "", "logprobs": null,
                        "finish_reason": reason,
                    }),
                };
                let event = self.chunk(choice);
                self.pending.push_back(event);
                self.finished += 1;
                if self.finished == self.meta.n {
                    self.end();
                }
            }
            Event::Error(e) => {
                // Headers are sent: the error goes in the stream, as OpenAI's does.
                self.pending
                    .push_back(SseEvent::default().data(e.body().to_string()));
                self.end();
            }
        }
    }

    fn end(&mut self) {
        if self.include_usage {
            let mut body = json!({
                "id": self.meta.id,
                "object": match self.kind { Kind::Chat { .. } => "chat.completion.chunk", Kind::Completion { .. } => "text_completion" },
                "created": self.meta.created,
                "model": self.meta.model,
                "choices": [],
                "system_fingerprint": null,
            });
            body["usage"] = json!(Usage::new(self.meta.prompt_tokens, self.completion_tokens));
            self.pending
                .push_back(SseEvent::default().data(body.to_string()));
        }
        self.pending.push_back(SseEvent::default().data("[DONE]"));
        self.done = true;
    }
}

/// The events of `rx` as server-sent events, ending with `data: [DONE]`. Dropping the
/// stream (the client went away) closes `rx`, and the scheduler drops the sequences.
pub(super) fn sse(
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    include_usage: bool,
    kind: Kind,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let offset = match &kind {
        Kind::Completion { echo: Some(echo) } => echo.len(),
        _ => 0,
    };
    let mut state = Streaming {
        meta,
        rx,
        kind,
        include_usage,
        pending: VecDeque::new(),
        finished: 0,
        completion_tokens: 0,
        offset,
        done: false,
    };
    state.start();
    let events = stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok(event), s));
            }
            if s.done {
                return None;
            }
            match s.rx.recv().await {
                Some(event) => s.on(event),
                None => {
                    s.on(Event::Error(ApiError::internal("the scheduler stopped")));
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
