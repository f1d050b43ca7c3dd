//! A relayed response body, read straight off the backend connection by whoever polls it (the
//! server connection writing the answer to the client): no task and no channel in between.
//! When the body's last byte is read, the connection goes back to its pool.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::{Frame, SizeHint};

use super::pool::{Bucket, Conn, READ_CHUNK};
use super::response::Framing;
use crate::BoxError;

/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Where a chunked body is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

enum State {
    /// Already read whole (or empty).
    Full(Option<Bytes>),
    /// Still on the connection.
    Streaming {
        conn: Conn,
        left: Left,
        keep_alive: bool,
        bucket: Arc<Bucket>,
    },
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Left {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

/// A response body from [`super::Relay::send`].
pub struct RelayBody {
    state: State,
}

impl RelayBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            state: State::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    pub(crate) fn streaming(
        conn: Conn,
        framing: Framing,
        keep_alive: bool,
        bucket: Arc<Bucket>,
    ) -> Self {
        let left = match framing {
            Framing::Empty => return Self::full(Bytes::new()),
            Framing::Length(n) => Left::Length(n),
            Framing::Chunked => Left::Chunked(Chunk::Size),
            Framing::UntilClose => Left::UntilClose,
        };
        Self {
            state: State::Streaming {
                conn,
                left,
                keep_alive,
                bucket,
            },
        }
    }

    /// The whole body when it was read with the head (a small page), else `None`.
    pub fn as_full(&self) -> Option<&Bytes> {
        match &self.state {
            State::Full(b) => b.as_ref(),
            _ => None,
        }
    }

    /// The body has been read to its end: give the connection back when it can carry more.
    fn finish(&mut self) {
        if let State::Streaming {
            conn,
            keep_alive,
            bucket,
            ..
        } = std::mem::replace(&mut self.state, State::Done)
        {
            // bytes past the body's end mean the peer broke the framing: not reused
            if keep_alive && conn.buf.is_empty() {
                bucket.put(conn);
            }
        }
    }
}

fn invalid(what: &str) -> BoxError {
    format!("invalid chunked body from the backend: {what}").into()
}

impl hyper::body::Body for RelayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let (conn, left) = match &mut this.state {
                State::Full(b) => {
                    let b = b.take();
                    this.state = State::Done;
                    return Poll::Ready(b.map(|b| Ok(Frame::data(b))));
                }
                State::Done => return Poll::Ready(None),
                State::Streaming { conn, left, .. } => (conn, left),
            };
            // consume what is buffered
            let buf = &mut conn.buf;
            match left {
                Left::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Left::Length(n) if !buf.is_empty() => {
                    let take = (*n).min(buf.len() as u64) as usize;
                    let data = buf.split_to(take).freeze();
                    *n -= take as u64;
                    if *n == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Left::UntilClose if !buf.is_empty() => {
                    let data = buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Left::Chunked(chunk) if !buf.is_empty() => match *chunk {
                    Chunk::Size => match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            buf.advance(used);
                            *chunk = match size {
                                0 => Chunk::Trailers,
                                n => Chunk::Data(n),
                            };
                            continue;
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_LINE => {
                            return Poll::Ready(Some(Err(invalid("chunk size line too long"))))
                        }
                        Ok(httparse::Status::Partial) => {}
                        Err(_) => return Poll::Ready(Some(Err(invalid("bad chunk size")))),
                    },
                    Chunk::Data(n) => {
                        let take = n.min(buf.len() as u64) as usize;
                        let data = buf.split_to(take).freeze();
                        *chunk = match n - take as u64 {
                            0 => Chunk::DataEnd,
                            rest => Chunk::Data(rest),
                        };
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Chunk::DataEnd if buf.len() >= 2 => {
                        if &buf[..2] != b"\r\n" {
                            return Poll::Ready(Some(Err(invalid("chunk not ended by CRLF"))));
                        }
                        buf.advance(2);
                        *chunk = Chunk::Size;
                        continue;
                    }
                    Chunk::DataEnd => {}
                    Chunk::Trailers => match memchr_crlf(buf) {
                        // an empty line ends the body; trailer fields are dropped
                        Some(0) => {
                            buf.advance(2);
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Some(at) => {
                            buf.advance(at + 2);
                            continue;
                        }
                        None if buf.len() > MAX_LINE => {
                            return Poll::Ready(Some(Err(invalid("trailer line too long"))))
                        }
                        None => {}
                    },
                },
                _ => {}
            }
            // need more bytes
            if conn.buf.capacity() - conn.buf.len() < READ_CHUNK / 4 {
                conn.buf.reserve(READ_CHUNK);
            }
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.stream),
                cx,
                &mut conn.buf
            ));
            match read {
                Ok(0) if matches!(left, Left::UntilClose) => {
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(
                        "the backend closed the connection before the body's end".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Full(b) => b.is_none(),
            State::Done => true,
            State::Streaming { left, .. } => matches!(left, Left::Length(0)),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            State::Done => SizeHint::with_exact(0),
            State::Streaming {
                left: Left::Length(n),
                ..
            } => SizeHint::with_exact(*n),
            State::Streaming { .. } => SizeHint::default(),
        }
    }
}

/// Where the first CRLF in `buf` starts.
fn memchr_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}
