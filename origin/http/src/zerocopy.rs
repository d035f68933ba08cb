//! Zero-copy sends of cached bytes (Linux).
//!
//! A cached chunk that [`sealed`] made lives in a sealed memfd: its bytes are
//! written once, the file is sealed against any change of content or size, and
//! a read-only mapping of it is the chunk's `Bytes`. Every such mapping is
//! registered by address. [`ZeroCopyStream`] wraps a plain TCP connection: when
//! hyper hands it a large slice lying in a registered mapping, the slice goes out
//! with `sendfile(2)` from the memfd: the kernel queues the file's pages on the
//! socket instead of copying the bytes, so a hit costs no copy of its body in
//! user space or into the socket. Anything else is written as usual.
//!
//! The one `unsafe` block of the workspace is the mapping: `memmap2` marks file
//! mappings unsafe because another process could change or truncate the file
//! under them. The memfd has no name in any file system and is sealed
//! (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) before it is
//! mapped, so nobody (this process included) can change or truncate it.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{self, IoSlice, Write};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Slices shorter than this are written with the rest of a response (one
/// `writev`); a separate `sendfile` call costs more than copying them.
pub const SENDFILE_MIN: usize = 16 * 1024;

/// A registered mapping: its length and the memfd behind it.
struct Region {
    len: usize,
    fd: Arc<OwnedFd>,
}

/// Registered mappings by start address.
static REGIONS: LazyLock<RwLock<BTreeMap<usize, Region>>> =
    LazyLock::new(|| RwLock::new(BTreeMap::new()));

/// Set once memfds could not be made (no support, or out of descriptors), so
/// that the warning is logged once.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Bytes sent with `sendfile` so far, by every [`ZeroCopyStream`] of the process.
static SENT: AtomicU64 = AtomicU64::new(0);

/// Bytes sent without a copy so far (for metrics and tests).
pub fn sent_bytes() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// The owner of a sealed chunk's bytes: unregisters its mapping before unmapping.
struct Sealed {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for Sealed {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        let mut regions = REGIONS.write().unwrap_or_else(|p| p.into_inner());
        // The registry's descriptor closes here (a send in progress holds its own
        // clone); then `map` is unmapped.
        regions.remove(&(self.map.as_ptr() as usize));
    }
}

/// `pieces` (the first `total` bytes of them) in a sealed memfd, mapped read-only
/// and registered for [`ZeroCopyStream`]. `None` where memfds cannot be made (not
/// Linux, or out of file descriptors); the caller then keeps the bytes its own way.
pub fn sealed(pieces: &[Bytes], total: usize) -> Option<Bytes> {
    if total == 0 {
        return None;
    }
    match seal(pieces, total) {
        Ok(b) => Some(b),
        Err(e) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot make sealed memfds; cached chunks are copied on send");
            }
            None
        }
    }
}

fn seal(pieces: &[Bytes], total: usize) -> io::Result<Bytes> {
    use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};
    let fd = memfd_create(
        "keyframe-chunk",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut file = std::fs::File::from(fd);
    let mut left = total;
    for p in pieces {
        if left == 0 {
            break;
        }
        let n = p.len().min(left);
        file.write_all(&p[..n])?;
        left -= n;
    }
    if left != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pieces shorter than total",
        ));
    }
    fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    // SAFETY: the file is an anonymous memfd sealed against writes, shrinking and
    // growing (and against removing those seals), so its contents and length
    // cannot change while this read-only mapping exists; see the module docs.
    let map = unsafe { memmap2::MmapOptions::new().len(total).map(&file)? };
    let fd = Arc::new(OwnedFd::from(file));
    let start = map.as_ptr() as usize;
    REGIONS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(start, Region { len: total, fd });
    Ok(Bytes::from_owner(Sealed { map }))
}

/// The memfd and offset behind `len` bytes at `addr`, if they lie in one
/// registered mapping.
fn lookup(addr: usize, len: usize) -> Option<(Arc<OwnedFd>, u64)> {
    let regions = REGIONS.read().unwrap_or_else(|p| p.into_inner());
    let (&start, r) = regions.range(..=addr).next_back()?;
    let off = addr - start;
    (off + len <= r.len).then(|| (r.fd.clone(), off as u64))
}

/// A TCP connection that sends slices of sealed chunks with `sendfile(2)`.
pub struct ZeroCopyStream {
    tcp: TcpStream,
    enabled: bool,
}

impl ZeroCopyStream {
    /// `enabled` false makes it a plain TCP stream (every write a `writev`).
    pub fn new(tcp: TcpStream, enabled: bool) -> Self {
        ZeroCopyStream { tcp, enabled }
    }

    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        fd: &OwnedFd,
        mut offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.tcp, fd, Some(&mut offset), len).map_err(io::Error::from)
            });
            match sent {
                Ok(n) => {
                    SENT.fetch_add(n as u64, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// The first slice worth a `sendfile`, if any: (index, memfd, offset).
    fn first_sealed(bufs: &[IoSlice<'_>]) -> Option<(usize, Arc<OwnedFd>, u64)> {
        bufs.iter().enumerate().find_map(|(i, b)| {
            if b.len() < SENDFILE_MIN {
                return None;
            }
            let (fd, off) = lookup(b.as_ptr() as usize, b.len())?;
            Some((i, fd, off))
        })
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Writes the slices before the first sealed one with `writev`; a sealed one at
    /// the front goes alone with `sendfile`. A short count is a valid answer: the
    /// caller comes back with the rest.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.enabled {
            return Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        }
        match Self::first_sealed(bufs) {
            Some((0, fd, off)) => this.poll_sendfile(cx, &fd, off, bufs[0].len()),
            Some((i, _, _)) => Pin::new(&mut this.tcp).poll_write_vectored(cx, &bufs[..i]),
            None => Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Raises the soft limit on open files to the hard limit: every sealed chunk
/// holds a descriptor. Returns the new soft limit.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        setrlimit(Resource::Nofile, raised).ok()?;
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Whether `b` is backed by a sealed memfd (and would be sent without a copy).
    fn is_sealed(b: &[u8]) -> bool {
        lookup(b.as_ptr() as usize, b.len()).is_some()
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn a_sealed_buffer_holds_its_pieces_and_is_registered_until_dropped() {
        let a = Bytes::from(pattern(40_000, 1));
        let b = Bytes::from(pattern(30_000, 2));
        let total = 60_000;
        let s = sealed(&[a.clone(), b.clone()], total).expect("memfd");
        let mut want = a.to_vec();
        want.extend_from_slice(&b[..total - a.len()]);
        assert_eq!(&s[..], &want[..]);
        assert!(is_sealed(&s[100..50_000]));
        let tail = s.slice(59_000..);
        assert!(is_sealed(&tail));
        // A slice reaching past the mapping is not.
        assert!(lookup(tail.as_ptr() as usize, tail.len() + 1).is_none());
        drop(s);
        assert!(is_sealed(&tail), "a slice keeps the mapping alive");
        let addr = tail.as_ptr() as usize;
        drop(tail);
        assert!(
            lookup(addr, 1).is_none(),
            "dropped mappings leave the registry"
        );
        assert!(!is_sealed(&pattern(20_000, 3)));
    }

    #[test]
    fn short_pieces_are_refused() {
        assert!(sealed(&[Bytes::from(vec![1u8; 10])], 20).is_none());
        assert!(sealed(&[], 0).is_none());
    }

    /// Headers, a sealed body and a plain tail arrive in order, whole.
    #[tokio::test]
    async fn vectored_writes_mix_writev_and_sendfile_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body = sealed(&[Bytes::from(pattern(3 << 20, 7))], 3 << 20).expect("memfd");
        let head = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        let tail = pattern(50_000, 9);
        let mut want = head.clone();
        want.extend_from_slice(&body[1000..]);
        want.extend_from_slice(&tail);
        let expected = want.len();
        let reader = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            let mut got = Vec::new();
            // Read slowly at first so that the sender sees short writes.
            let mut small = [0u8; 4096];
            for _ in 0..8 {
                let n = c.read(&mut small).await.expect("read");
                got.extend_from_slice(&small[..n]);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            c.read_to_end(&mut got).await.expect("read");
            got
        });
        let (tcp, _) = listener.accept().await.expect("accept");
        let sent_before = sent_bytes();
        let mut s = ZeroCopyStream::new(tcp, true);
        let parts: Vec<&[u8]> = vec![&head, &body[1000..], &tail];
        let mut at = (0usize, 0usize); // (part, offset)
        while at.0 < parts.len() {
            let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&parts[at.0][at.1..]))
                .chain(parts[at.0 + 1..].iter().map(|p| IoSlice::new(p)))
                .collect();
            let mut n = s.write_vectored(&slices).await.expect("write");
            assert!(n > 0);
            while n > 0 {
                let left = parts[at.0].len() - at.1;
                if n >= left {
                    n -= left;
                    at = (at.0 + 1, 0);
                } else {
                    at.1 += n;
                    n = 0;
                }
            }
        }
        s.shutdown().await.expect("shutdown");
        drop(s);
        let got = reader.await.expect("reader");
        assert_eq!(got.len(), expected);
        assert!(got == want, "bytes differ");
        assert!(
            sent_bytes() - sent_before >= body.len() as u64 - 1000,
            "the sealed body did not go out with sendfile"
        );
    }
}
