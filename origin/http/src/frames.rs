//! Response bodies as the connection writes them: [`Frames`] hands hyper, in one
//! frame, every data frame the body has ready (up to [`MAX_PIECES`] of them), as
//! one [`Pieces`] buffer of several `Bytes` that goes out in one `writev`.
//!
//! hyper flushes its write queue whenever it holds more than its `max_buf_size`
//! (which also bounds a request head, so it stays small: 64 KiB), and flushes
//! before it polls the body again. An unaligned 1 MiB cache hit spans two cached
//! chunks, two frames: without this it cost two `writev` calls (Varnish writes the
//! same response in one). Nothing is copied: the pieces are the chunks' own
//! `Bytes`, and a frame waits for nothing (only what is ready is taken).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut as _, Bytes};
use hyper::body::{Body, Frame, SizeHint};

/// The most data frames joined into one.
pub const MAX_PIECES: usize = 8;

/// Several `Bytes` read as one buffer.
#[derive(Debug, Default)]
pub struct Pieces {
    parts: VecDeque<Bytes>,
    remaining: usize,
}

impl Pieces {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.remaining += b.len();
            self.parts.push_back(b);
        }
    }

    /// How many `Bytes` it holds.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl From<Bytes> for Pieces {
    fn from(b: Bytes) -> Pieces {
        let mut p = Pieces::default();
        p.push(b);
        p
    }
}

impl Buf for Pieces {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |b| b.as_ref())
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of Pieces");
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(front) = self.parts.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.parts.pop_front();
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        match self.parts.front_mut() {
            // The common case (h2's DATA frames, one piece) without a copy.
            Some(front) if len <= front.len() => {
                let b = front.split_to(len);
                self.remaining -= len;
                if front.is_empty() {
                    self.parts.pop_front();
                }
                b
            }
            _ => {
                assert!(
                    len <= self.remaining,
                    "copy_to_bytes past the end of Pieces"
                );
                let mut out = bytes::BytesMut::with_capacity(len);
                out.put((&mut *self).take(len));
                out.freeze()
            }
        }
    }
}

/// A body whose data frames are joined while they are ready: see the module.
pub struct Frames<B: Body> {
    body: B,
    /// A trailers frame or an error met while joining, for the next poll.
    held: Option<Result<Frame<Bytes>, B::Error>>,
    /// The body has ended (seen while joining).
    done: bool,
}

impl<B: Body<Data = Bytes>> Frames<B> {
    pub fn new(body: B) -> Frames<B> {
        Frames {
            body,
            held: None,
            done: false,
        }
    }
}

impl<B> Body for Frames<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin,
{
    type Data = Pieces;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Pieces>, B::Error>>> {
        let this = self.get_mut();
        if let Some(held) = this.held.take() {
            return Poll::Ready(Some(held.map(|f| f.map_data(Pieces::from))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let first = match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            other => return other.map(|o| o.map(|r| r.map(|f| f.map_data(Pieces::from)))),
        };
        let mut pieces = match first.into_data() {
            Ok(d) => Pieces::from(d),
            Err(other) => return Poll::Ready(Some(Ok(other.map_data(Pieces::from)))),
        };
        // Whatever else is ready now goes in the same frame; what is not is left
        // for hyper's next poll (the body has registered the waker).
        while pieces.len() < MAX_PIECES && !this.body.is_end_stream() {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => pieces.push(d),
                    Err(other) => {
                        this.held = Some(Ok(other));
                        break;
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.held = Some(Err(e));
                    break;
                }
                Poll::Ready(None) => {
                    this.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        Poll::Ready(Some(Ok(Frame::data(pieces))))
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && (self.done || self.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            self.body.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::io::IoSlice;

    fn frames(
        parts: Vec<Result<Frame<Bytes>, std::io::Error>>,
    ) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        StreamBody::new(futures::stream::iter(parts))
    }

    async fn next<B>(f: &mut Frames<B>) -> Frame<Pieces>
    where
        B: Body<Data = Bytes, Error = std::io::Error> + Unpin,
    {
        f.frame().await.expect("a frame").expect("no error")
    }

    #[tokio::test]
    async fn ready_frames_join_into_one_vectored_buffer() {
        let body = frames(vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::data(Bytes::from_static(b""))),
            Ok(Frame::data(Bytes::from_static(b"defg"))),
        ]);
        let mut f = Frames::new(body);
        let mut first = next(&mut f).await.into_data().expect("data");
        assert_eq!(
            first.len(),
            2,
            "both ready pieces in one frame, the empty one dropped"
        );
        assert_eq!(first.remaining(), 7);
        let mut io = [IoSlice::new(&[]); 4];
        assert_eq!(first.chunks_vectored(&mut io), 2);
        assert_eq!(&*io[0], b"abc");
        assert_eq!(&*io[1], b"defg");
        first.advance(4);
        assert_eq!(first.chunk(), b"efg");
        assert_eq!(first.copy_to_bytes(3), Bytes::from_static(b"efg"));
        assert!(f.frame().await.is_none());
        assert!(f.is_end_stream());
    }

    #[tokio::test]
    async fn trailers_and_errors_keep_their_place() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-t", http::HeaderValue::from_static("1"));
        let body = frames(vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::trailers(trailers.clone())),
        ]);
        let mut f = Frames::new(body);
        let d = next(&mut f).await.into_data().expect("data");
        assert_eq!(d.chunk(), b"ab");
        let t = next(&mut f).await.into_trailers().expect("trailers");
        assert_eq!(t, trailers);
        assert!(f.frame().await.is_none());

        let body = frames(vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("upstream died")),
            Ok(Frame::data(Bytes::from_static(b"never"))),
        ]);
        let mut f = Frames::new(body);
        let d = next(&mut f).await.into_data().expect("data");
        assert_eq!(d.remaining(), 2);
        assert!(
            f.frame().await.expect("a frame").is_err(),
            "the error follows the bytes before it"
        );
    }

    /// A connection that takes every write whole and counts the calls.
    struct Sink {
        request: &'static [u8],
        writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl tokio::io::AsyncRead for Sink {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.request.is_empty() {
                return Poll::Pending; // the client waits for the answer
            }
            let n = self.request.len().min(buf.remaining());
            buf.put_slice(&self.request[..n]);
            self.request = &self.request[n..];
            Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncWrite for Sink {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n = bufs.iter().map(|b| b.len()).sum();
            let mut out = self.out.lock().expect("lock");
            for b in bufs {
                out.extend_from_slice(b);
            }
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// An unaligned 1 MiB hit is two cached chunks, two ready frames: the server's
    /// connection (hyper with the byte servers' 64 KiB `max_buf_size`) writes the
    /// head and both in one call. Without [`Frames`] it took two.
    #[tokio::test]
    async fn a_response_of_two_ready_chunks_is_one_write() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let writes = Arc::new(AtomicUsize::new(0));
        let out = Arc::new(Mutex::new(Vec::new()));
        let io = Sink {
            request: b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            writes: writes.clone(),
            out: out.clone(),
        };
        let a = Bytes::from(vec![b'a'; 600 << 10]);
        let b = Bytes::from(vec![b'b'; 424 << 10]);
        let tail = b.clone();
        let svc = hyper::service::service_fn(move |_req| {
            let body = crate::http_server::for_connection(
                http::Response::builder()
                    .header("content-length", (1u64 << 20).to_string())
                    .body(
                        http_body_util::StreamBody::new(futures::stream::iter(vec![
                            Ok::<_, crate::http_server::BoxError>(Frame::data(a.clone())),
                            Ok(Frame::data(b.clone())),
                        ]))
                        .boxed_unsync(),
                    )
                    .expect("response"),
            );
            async move { Ok::<_, std::convert::Infallible>(body) }
        });
        hyper::server::conn::http1::Builder::new()
            .max_buf_size(64 << 10)
            .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
            .await
            .expect("served");
        let out = out.lock().expect("lock");
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(out.ends_with(&tail[..]), "the whole body went out");
        let head = out.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        assert_eq!(out.len() - head, 1 << 20);
        assert_eq!(
            writes.load(Ordering::Relaxed),
            1,
            "head and both chunks in one writev"
        );
    }

    #[test]
    fn copy_to_bytes_across_pieces() {
        let mut p = Pieces::from(Bytes::from_static(b"ab"));
        p.push(Bytes::from_static(b"cde"));
        assert_eq!(p.copy_to_bytes(4), Bytes::from_static(b"abcd"));
        assert_eq!(p.remaining(), 1);
        assert_eq!(p.chunk(), b"e");
    }
}
