//! An HTTP or HTTPS destination run by the test: records every request and answers as
//! scripted.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The certificate the client proved it holds, when an HTTPS sink asked for one.
    pub client_certificate: Option<CertificateDer<'static>>,
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

/// The leaf certificate of a client that passed the sink's client authentication.
#[derive(Clone)]
struct ClientCertificate(CertificateDer<'static>);

impl Sink {
    pub async fn start() -> Self {
        let (inner, app) = recorder();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    /// The same over HTTPS on 127.0.0.1, presenting and verifying what `config` says (see
    /// `tls::server`). A handshake either side refuses records nothing.
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> Self {
        let (inner, app) = recorder();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/hook", listener.local_addr().unwrap());
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).into_fallible().await {
                        Ok(tls) => tls,
                        Err((_, tcp)) => return close_gently(tcp).await,
                    };
                    let client = (tls.get_ref().1.peer_certificates())
                        .and_then(|chain| chain.first())
                        .map(|leaf| ClientCertificate(leaf.clone().into_owned()));
                    let service = hyper::service::service_fn(move |mut request: Request<_>| {
                        if let Some(client) = &client {
                            request.extensions_mut().insert(client.clone());
                        }
                        app.clone().oneshot(request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
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

/// Closes a connection whose handshake failed once the client has closed its side. Closing
/// with the client's request unread would reset the connection, and the reset can overtake
/// the TLS alert that tells the client why.
async fn close_gently(mut tcp: tokio::net::TcpStream) {
    let _ = tcp.shutdown().await;
    let mut discard = tokio::io::sink();
    let drain = tokio::io::copy(&mut tcp, &mut discard);
    let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
}

fn recorder() -> (Arc<Mutex<Inner>>, Router) {
    let inner = Arc::new(Mutex::new(Inner::default()));
    let app = Router::new().fallback(handle).with_state(inner.clone());
    (inner, app)
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    client: Option<Extension<ClientCertificate>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let answer = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            headers,
            body,
            at: Instant::now(),
            client_certificate: client.map(|Extension(ClientCertificate(cert))| cert),
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
