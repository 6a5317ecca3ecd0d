//! A client connection's byte stream as hyper sees it: reads tell the connection's
//! [`Clock`] that the client is sending, and the bodiless error answers hyper writes by itself
//! (400 for a malformed request line, 414, 431) are rewritten into the endpoint's JSON error
//! shape, like every other answer.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::clock::Clock;
use super::reply::error_json;

/// What hyper 0.14 answers by itself before any route runs, and what we say instead.
const HYPER_ERRORS: [(&[u8], &str); 3] = [
    (b"400", "the request is malformed"),
    (b"414", "the request URL is too long"),
    (b"431", "the request headers are too large"),
];

/// The HTTP/2 connection preface: a plaintext client that starts with it speaks HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// A connection's stream, watched.
pub struct Wire<T> {
    inner: T,
    clock: Arc<Clock>,
    first_read: bool,
    /// A rewritten answer being written, and the length of hyper's bytes it stands for.
    rewrite: Option<(Vec<u8>, usize, usize)>,
}

impl<T> Wire<T> {
    /// Wraps `inner`; `sniff` decides HTTP/1 or HTTP/2 from the first bytes (plaintext).
    pub fn new(inner: T, clock: Arc<Clock>, sniff: bool) -> Self {
        Wire {
            inner,
            clock,
            first_read: sniff,
            rewrite: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Wire<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let fresh = &buf.filled()[before..];
        if !fresh.is_empty() {
            if self.first_read {
                self.first_read = false;
                self.clock.set_http1(!fresh.starts_with(H2_PREFACE));
            }
            self.clock.bytes_in();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Wire<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.rewrite.is_none() {
            match json_for_hyper_error(buf) {
                Some(json) => self.rewrite = Some((json, 0, buf.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        // Write the whole replacement, then tell hyper its bytes went out.
        let this = &mut *self;
        while let Some((bytes, written, _)) = this.rewrite.as_mut() {
            if *written == bytes.len() {
                break;
            }
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let stood_for = this.rewrite.take().map_or(buf.len(), |(_, _, len)| len);
        Poll::Ready(Ok(stood_for))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        // hyper then flattens each answer into one buffer, so a head arrives whole.
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The JSON answer for a head hyper wrote by itself: an error status with an empty body and
/// no Content-Type (every answer of ours has one).
fn json_for_hyper_error(head: &[u8]) -> Option<Vec<u8>> {
    // Every answer passes here: most leave at this first byte of the status (not a 4xx).
    if head.get(9) != Some(&b'4') {
        return None;
    }
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let (_, message) = HYPER_ERRORS.iter().find(|(code, _)| *code == status)?;
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let headers = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    if headers.contains("\r\ncontent-type:") || !headers.contains("\r\ncontent-length: 0") {
        return None;
    }
    let status_line = &head[..head.windows(2).position(|w| w == b"\r\n")?];
    let body = error_json(message);
    let mut out = Vec::with_capacity(status_line.len() + body.len() + 128);
    out.extend_from_slice(status_line);
    out.extend_from_slice(
        format!(
            "\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_heads_become_json_answers() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                     date: Sun, 29 Nov 2026 08:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(json_for_hyper_error(head).expect("rewritten")).expect("utf8");
        assert!(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(out.ends_with(
            "\r\n\r\n{\"STATUS\":\"ERROR\",\"MESSAGE\":\"the request headers are too large\"}"
        ));
        assert!(out.contains("content-type: application/json"));
    }

    #[test]
    fn our_own_answers_pass_untouched() {
        for head in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"{\"STATUS\":\"OK\"}",
        ] {
            assert_eq!(json_for_hyper_error(head), None);
        }
    }
}
