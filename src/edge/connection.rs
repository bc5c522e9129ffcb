//! One connection: HTTP/1.1 through hyper, closed when its phase's deadline passes, and on
//! shutdown either closed at once or let finish the request it is answering.

use super::stage::{Answering, Stage};
use super::watched::Watched;
use super::{PeerAddr, Timeouts};
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The longest head, and hyper's read buffer: webhook heads are a few KiB, and hyper's
/// default buffer (about 400 KiB) would let each open connection pin that much memory.
const MAX_HEAD: usize = 64 << 10;

pub(super) async fn serve(
    stream: TcpStream,
    peer: PeerAddr,
    router: Router,
    timeouts: Timeouts,
    shutdown: CancellationToken,
) {
    let stage = Arc::new(Stage::new(timeouts));
    let io = TokioIo::new(Watched::new(stream, stage.clone()));
    let service = service_fn(|mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(peer);
        let _answering = stage.begin();
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|body| Body::new(Answer { body, _answering })))
        }
    });
    let connection = http1::Builder::new()
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD)
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let deadline = stage.deadline();
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = stage.changed() => {}
            () = until(deadline) => {
                tracing::debug!("closing a connection that outlived its deadline");
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                // hyper closes idle connections itself, after flushing what they were sent,
                // and ends the others after their response. A connection that never reached
                // the router (silent, or partway through its first head) is owed nothing.
                connection.as_mut().graceful_shutdown();
                if !stage.begun() {
                    return;
                }
            }
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A response body that keeps its connection busy until hyper is done with it.
struct Answer {
    body: Body,
    _answering: Answering,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
