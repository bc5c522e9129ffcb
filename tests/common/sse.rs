//! A server-sent events client for the live status stream: frames as they arrive.

use super::Running;
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

/// How long a test waits for the next frame before failing.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

#[derive(Debug, Clone)]
pub enum Frame {
    Event(SseEvent),
    /// A comment line (`: text`): heartbeats, and why a stream ends.
    Comment(String),
}

pub struct SseClient {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseClient {
    /// GETs `path` from the admin listener with `token`, resuming after `last_event_id`.
    pub async fn open(gw: &Running, path: &str, token: &str, last_event_id: Option<&str>) -> Self {
        let mut request = gw.admin_request(reqwest::Method::GET, path, token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        // The shared client's whole-request timeout would cut a long stream.
        let request = request.timeout(Duration::from_secs(3600));
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}: {response:?}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next frame; `None` when the server ended the stream.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.body.next())
                .await
                .expect("no frame from the stream in time");
            match chunk {
                Some(bytes) => self
                    .buffer
                    .push_str(std::str::from_utf8(&bytes.unwrap()).unwrap()),
                None => return None,
            }
        }
    }

    /// The next event, skipping comments (heartbeats would otherwise keep a test waiting for
    /// ever); the stream must not end first.
    pub async fn event(&mut self) -> SseEvent {
        let next = async {
            loop {
                match self.frame().await.expect("the stream ended") {
                    Frame::Event(event) => return event,
                    Frame::Comment(_) => {}
                }
            }
        };
        tokio::time::timeout(PATIENCE, next)
            .await
            .expect("no event from the stream in time")
    }
}

fn parse(block: &str) -> Frame {
    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            return Frame::Comment(comment.trim().to_string());
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = value.to_string(),
            "event" => event = value.to_string(),
            "data" => data.push_str(value),
            _ => {}
        }
    }
    Frame::Event(SseEvent {
        id,
        event,
        data: serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {block:?}")),
    })
}
