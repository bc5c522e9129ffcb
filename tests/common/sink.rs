//! An HTTP destination run by the test: records every request and answers as scripted.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    /// The header's value; a missing header fails the test (it is never read as empty).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("the destination got no {name} header: {self:?}"))
            .to_str()
            .unwrap()
    }
}

/// One scripted answer: status, optional Retry-After seconds, optional delay before answering.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Answer>,
    default: Option<Answer>,
}

#[derive(Clone)]
pub struct Sink {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Sink {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    /// The next requests get these answers, in order; then the default (200 unless set).
    pub fn script(&self, answers: &[Answer]) {
        self.inner
            .lock()
            .unwrap()
            .script
            .extend(answers.iter().copied());
    }

    pub fn set_default(&self, answer: Answer) {
        self.inner.lock().unwrap().default = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived, failing the test after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                started.elapsed() < within,
                "expected {n} deliveries within {within:?}, got {}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let answer = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            headers,
            body,
            at: Instant::now(),
        });
        let default = inner.default.unwrap_or(Answer::status(200));
        inner.script.pop_front().unwrap_or(default)
    };
    tokio::time::sleep(answer.delay).await;
    let mut response =
        (StatusCode::from_u16(answer.status).unwrap(), "sink says so").into_response();
    if let Some(secs) = answer.retry_after {
        response.headers_mut().insert("retry-after", secs.into());
    }
    response
}
