//! Trino's spooling protocol: result pages name segments by opaque tokens
//! (`/v1/spooled/download/{token}`, `/v1/spooled/ack/{token}`) that say nothing of the query or
//! the cluster. Sluice makes them self-contained, as Trino Gateway does: every segment URI in a
//! statement answer gets `queryId=…&spooledBackend=…` appended, and a request under
//! `/v1/spooled/` goes to the backend it names (any configured backend, in any state; an unknown
//! name falls back to the query id). Nothing is stored, so this works after a restart and on any
//! instance of a fleet.
//!
//! The rewrite is a stream transform: answers are not buffered, only a token cut by a chunk
//! boundary is carried to the next chunk (at most [`MAX_TOKEN`] bytes).
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use sluice_http::Body;

/// The marker of a segment URI.
const MARKER: &[u8] = b"/v1/spooled/";
/// The longest token carried across chunks; a longer one is passed on unchanged.
const MAX_TOKEN: usize = 2048;

/// The query string appended to segment URIs answered for `query_id` by `backend`.
pub fn params(query_id: &str, backend: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("queryId={}&spooledBackend={}", enc(query_id), enc(backend))
}

/// The backend and query named by a segment request's query string.
pub fn owner_params(query: Option<&str>) -> (Option<String>, Option<String>) {
    let (mut backend, mut id) = (None, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "spooledBackend" => backend = Some(v.into_owned()),
            "queryId" => id = Some(v.into_owned()),
            _ => {}
        }
    }
    (backend, id)
}

/// Whether a whole answer names a segment at all (checked before a rewriter is made for it).
pub fn mentions_segments(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, MARKER).is_some()
}

/// Whether `b` can be part of a token.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'%' | b'=' | b'+' | b'/')
}

/// How many bytes at the end of `buf` (after `from`) may be the start of a marker.
fn marker_tail(buf: &[u8], from: usize) -> usize {
    (1..MARKER.len())
        .rev()
        .find(|&n| buf.len() >= from + n && buf[buf.len() - n..] == MARKER[..n])
        .unwrap_or(0)
}

/// Appends `params` to every segment URI in a byte stream.
pub struct Rewriter {
    params: Vec<u8>,
    carry: BytesMut,
}

impl Rewriter {
    /// A rewriter appending `params` (see [`params`]).
    pub fn new(params: String) -> Self {
        Self {
            params: params.into_bytes(),
            carry: BytesMut::new(),
        }
    }

    /// Rewrite a whole buffer at once.
    pub fn rewrite_all(mut self, bytes: Bytes) -> Bytes {
        let out = self.push_bytes(bytes);
        match self.carry.is_empty() {
            true => out,
            false => [&out[..], &self.finish()[..]].concat().into(),
        }
    }

    /// [`Rewriter::push`] of a chunk that is passed on as it is (not copied) when it names no
    /// segment and ends in no part of one: the common case of every data page.
    pub fn push_bytes(&mut self, chunk: Bytes) -> Bytes {
        if self.carry.is_empty()
            && memchr::memmem::find(&chunk, MARKER).is_none()
            && marker_tail(&chunk, 0) == 0
        {
            return chunk;
        }
        self.push(&chunk).freeze()
    }

    /// The rewritten bytes of `chunk` that are final; the rest is carried.
    pub fn push(&mut self, chunk: &[u8]) -> BytesMut {
        self.carry.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.carry);
        let mut out = BytesMut::with_capacity(buf.len() + 64);
        let finder = memchr::memmem::Finder::new(MARKER);
        let mut at = 0;
        while let Some(found) = finder.find(&buf[at..]) {
            let start = at + found;
            let after = start + MARKER.len();
            let kind_len = if buf[after..].starts_with(b"download/") {
                9
            } else if buf[after..].starts_with(b"ack/") {
                4
            } else if b"download/".starts_with(&buf[after..]) || b"ack/".starts_with(&buf[after..])
            {
                // cut inside the kind: carry from the marker on
                out.extend_from_slice(&buf[at..start]);
                self.carry.extend_from_slice(&buf[start..]);
                return out;
            } else {
                out.extend_from_slice(&buf[at..after]);
                at = after;
                continue;
            };
            let token_start = after + kind_len;
            let end = buf[token_start..]
                .iter()
                .position(|b| !token_byte(*b))
                .map(|p| token_start + p);
            match end {
                Some(end) => {
                    out.extend_from_slice(&buf[at..end]);
                    match buf[end] {
                        b'"' | b'\\' => {
                            out.extend_from_slice(b"?");
                            out.extend_from_slice(&self.params);
                            at = end;
                        }
                        b'?' => {
                            out.extend_from_slice(b"?");
                            out.extend_from_slice(&self.params);
                            out.extend_from_slice(b"&");
                            at = end + 1;
                        }
                        _ => at = end,
                    }
                }
                None if buf.len() - start <= MAX_TOKEN => {
                    out.extend_from_slice(&buf[at..start]);
                    self.carry.extend_from_slice(&buf[start..]);
                    return out;
                }
                None => {
                    out.extend_from_slice(&buf[at..]);
                    return out;
                }
            }
        }
        // keep a tail that may be the start of a marker
        let keep = marker_tail(&buf, at);
        out.extend_from_slice(&buf[at..buf.len() - keep]);
        self.carry.extend_from_slice(&buf[buf.len() - keep..]);
        out
    }

    /// What is still carried, unchanged (the stream ended).
    pub fn finish(&mut self) -> Bytes {
        std::mem::take(&mut self.carry).freeze()
    }
}

/// A response body with every segment URI rewritten as it streams.
pub struct Rewriting {
    inner: Body,
    rewriter: Rewriter,
    done: bool,
}

impl Rewriting {
    /// Rewrite `inner` with `rewriter`.
    pub fn new(inner: Body, rewriter: Rewriter) -> Self {
        Self {
            inner,
            rewriter,
            done: false,
        }
    }
}

impl HttpBody for Rewriting {
    type Data = Bytes;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    let out = self.rewriter.push_bytes(data);
                    Poll::Ready(Some(Ok(Frame::data(out))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(None) => {
                self.done = true;
                let rest = self.rewriter.finish();
                match rest.is_empty() {
                    true => Poll::Ready(None),
                    false => Poll::Ready(Some(Ok(Frame::data(rest)))),
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"{"id":"q1","data":{"encoding":"json","segments":[{"type":"spooled","uri":"http://gw:8080/v1/spooled/download/tok-AB_1=","ackUri":"http://gw:8080/v1/spooled/ack/tok-AB_1=","metadata":{}},{"type":"spooled","uri":"http://gw/v1/spooled/download/t2?x=1"}]},"nextUri":"http://gw/v1/statement/executing/q1/y/1"}"#;

    fn expected() -> String {
        let p = "queryId=q1&spooledBackend=blue+one";
        PAGE.replace("tok-AB_1=\"", &format!("tok-AB_1=?{p}\""))
            .replace("t2?x=1", &format!("t2?{p}&x=1"))
    }

    #[test]
    fn every_segment_uri_names_its_query_and_backend() {
        let out = Rewriter::new(params("q1", "blue one"))
            .rewrite_all(Bytes::from_static(PAGE.as_bytes()));
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), expected());
        assert_eq!(
            owner_params(Some("queryId=q1&spooledBackend=blue+one")),
            (Some("blue one".into()), Some("q1".into()))
        );
    }

    #[test]
    fn chunk_boundaries_anywhere_give_the_same_bytes() {
        let bytes = PAGE.as_bytes();
        for size in 1..40 {
            let mut r = Rewriter::new(params("q1", "blue one"));
            let mut out = Vec::new();
            for chunk in bytes.chunks(size) {
                out.extend_from_slice(&r.push_bytes(Bytes::copy_from_slice(chunk)));
            }
            out.extend_from_slice(&r.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected(),
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn pages_without_segments_pass_unchanged_and_nothing_grows() {
        let page = br#"{"data":[[1,"/v1/spooled/other"],[2,"/v1/spool"]],"x":"/v1/spooled/"}"#;
        let out = Rewriter::new(params("q", "b")).rewrite_all(Bytes::from_static(page));
        assert_eq!(&out[..], &page[..]);
        // a huge token is passed on, not carried forever
        let mut r = Rewriter::new(params("q", "b"));
        let mut total = r.push(b"\"/v1/spooled/download/").len();
        for _ in 0..100 {
            total += r.push(&[b'a'; 1000]).len();
            assert!(r.carry.len() <= MAX_TOKEN + 1000);
        }
        total += r.finish().len();
        assert_eq!(total, 22 + 100_000);
    }
}
