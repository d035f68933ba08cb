//! The HTTP/1.1 client side: one hyper connection per task, requests built with
//! as little allocation as possible, bodies counted (or kept when sampled for
//! verification).

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_RANGE, HOST, RANGE};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

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
    exchange_paced(sender, req, keep, None).await
}

/// A token bucket on the reading side: a client on a link of `rate` bits per
/// second. Reading stops while the bucket is empty, so TCP's flow control slows
/// the sender (the socket buffers in between still take a burst).
#[derive(Debug, Clone)]
pub struct Pace {
    /// Bytes per second.
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pace {
    /// A full bucket of `burst` bytes refilled at `bits_per_s`.
    pub fn new(bits_per_s: u64, burst: u64, now: Instant) -> Pace {
        Pace {
            rate: bits_per_s as f64 / 8.0,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    /// `n` bytes read at `now`: how long to wait before reading more.
    pub fn take(&mut self, now: Instant, n: usize) -> Duration {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst) - n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// [`exchange`], reading the body no faster than `pace` allows.
pub async fn exchange_paced(
    sender: &mut Sender,
    req: Request<Empty<Bytes>>,
    keep: Option<usize>,
    mut pace: Option<&mut Pace>,
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
            if let Some(p) = pace.as_deref_mut() {
                let wait = p.take(Instant::now(), data.len());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
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
    fn pace_holds_a_rate_after_the_burst() {
        let t0 = Instant::now();
        // 8 kbit/s = 1000 bytes/s, a 500-byte bucket.
        let mut p = Pace::new(8_000, 500, t0);
        assert_eq!(p.take(t0, 500), Duration::ZERO);
        assert_eq!(p.take(t0, 1000), Duration::from_secs(1));
        // Waited the second: the bucket is back at 0, the next 250 bytes cost 0.25 s.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(p.take(t1, 250), Duration::from_millis(250));
        // A long idle refills no more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(p.take(t2, 500), Duration::ZERO);
        assert!(p.take(t2, 1) > Duration::ZERO);
    }

    #[test]
    fn range_header_text() {
        assert_eq!(range_value(0, 4095), "bytes=0-4095");
        assert_eq!(
            range_value(u64::MAX - 1, u64::MAX),
            "bytes=18446744073709551614-18446744073709551615"
        );
    }
}
