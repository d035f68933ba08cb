//! The HTTP/1.1 client side: one hyper connection per task, requests built with
//! as little allocation as possible, bodies counted (or kept when sampled for
//! verification).

use std::io::Write as _;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_RANGE, HOST, RANGE};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::targets::Server;

pub type Sender = http1::SendRequest<Empty<Bytes>>;
pub type Connection = http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>;

/// Opens a connection. The caller drives the returned `Connection` future,
/// ideally in the same task as the requests (no cross-task wake-ups).
pub async fn connect(addr: &str) -> std::io::Result<(Sender, Connection)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)
}

/// `bytes=START-END` without going through `format!`.
pub fn range_value(start: u64, end: u64) -> HeaderValue {
    let mut buf = [0u8; 48];
    let mut cursor = &mut buf[..];
    // 6 + 20 + 1 + 20 bytes at most: always fits.
    let _ = write!(cursor, "bytes={start}-{end}");
    let n = 48 - cursor.len();
    HeaderValue::from_bytes(&buf[..n]).unwrap_or(HeaderValue::from_static("bytes=0-"))
}

/// A GET of `uri` on `server`, for the inclusive `range` if any.
pub fn request(
    server: &Server,
    uri: Uri,
    range: Option<(u64, u64)>,
    keepalive: bool,
) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.insert(HOST, server.host.clone());
    if let Some((start, end)) = range {
        headers.insert(RANGE, range_value(start, end));
    }
    if !keepalive {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    for h in &server.headers {
        headers.insert(h.name.clone(), h.value.clone());
    }
    req
}

/// What came back.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub content_range: Option<HeaderValue>,
    pub len: u64,
    /// The body, when asked to keep it.
    pub body: Option<Vec<u8>>,
}

/// Why an exchange failed (the connection is not reused after one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Send,
    Body,
}

impl Failure {
    pub fn kind(self) -> &'static str {
        match self {
            Failure::Send => "send",
            Failure::Body => "body",
        }
    }
}

/// Sends `req` and reads the whole body; keeps it when `keep` (capacity hint).
pub async fn exchange(
    sender: &mut Sender,
    req: Request<Empty<Bytes>>,
    keep: Option<usize>,
) -> Result<Response, Failure> {
    let resp = sender.send_request(req).await.map_err(|_| Failure::Send)?;
    let status = resp.status();
    let content_range = resp.headers().get(CONTENT_RANGE).cloned();
    let mut body = resp.into_body();
    let mut kept = keep.map(|cap| Vec::with_capacity(cap.min(64 << 20)));
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Failure::Body)?;
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            if let Some(k) = kept.as_mut() {
                k.extend_from_slice(&data);
            }
        }
    }
    Ok(Response {
        status,
        content_range,
        len,
        body: kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_text() {
        assert_eq!(range_value(0, 4095), "bytes=0-4095");
        assert_eq!(
            range_value(u64::MAX - 1, u64::MAX),
            "bytes=18446744073709551614-18446744073709551615"
        );
    }
}
