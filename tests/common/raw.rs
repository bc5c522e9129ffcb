//! A bare TCP client, for what HTTP clients avoid on purpose: half a head, a body that stops,
//! a connection held open and silent.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Raw {
    stream: TcpStream,
    /// Bytes read past the last response.
    pending: Vec<u8>,
}

/// One HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Asserts an RFC 9457 problem of this status and type slug.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        assert_eq!(
            self.json()["type"],
            format!("urn:hookgate:problem:{slug}"),
            "{self:?}"
        );
    }
}

impl Raw {
    /// Connects to `base`, an `http://host:port` URL.
    pub async fn connect(base: &str) -> Self {
        let addr = base.trim_start_matches("http://");
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            pending: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Like [`Raw::send`], for a peer that may have closed already: false if it has.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Reads the next response (its body by Content-Length); panics if the connection closes
    /// first.
    pub async fn response(&mut self) -> RawResponse {
        let head_end = loop {
            if let Some(at) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                self.fill().await,
                "closed before a response: {:?}",
                self.text()
            );
        };
        let head = String::from_utf8(self.pending[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        while self.pending.len() < head_end + length {
            assert!(self.fill().await, "closed inside a response body");
        }
        let body = self.pending[head_end..head_end + length].to_vec();
        self.pending.drain(..head_end + length);
        RawResponse {
            status: status.parse().unwrap(),
            headers,
            body,
        }
    }

    /// Waits up to `within` for the server to close the connection, and returns what it sent
    /// meanwhile; `None` if it is still open.
    pub async fn closed_within(&mut self, within: Duration) -> Option<Vec<u8>> {
        let closed = tokio::time::timeout(within, async { while self.fill().await {} }).await;
        closed.ok().map(|()| std::mem::take(&mut self.pending))
    }

    /// Reads more; false once the peer has closed (or reset) the connection.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}
