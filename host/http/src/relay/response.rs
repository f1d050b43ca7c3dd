//! Reading a response head off a connection (`httparse`, in place) and working out how its body
//! is framed (RFC 9112 §6.3). Header values are slices of the bytes read, not copies.
use bytes::{Buf, Bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};

/// The longest response head accepted.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a response head.
const MAX_HEADERS: usize = 128;

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (a `HEAD` answer, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// A parsed response head.
pub(crate) struct Head {
    pub(crate) response: Response<()>,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request once the body is read.
    pub(crate) keep_alive: bool,
}

/// Why a response head is unusable.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x, or a malformed line or field.
    #[error("malformed response head: {0}")]
    Malformed(String),
    /// Longer than [`MAX_HEAD`].
    #[error("response head longer than {MAX_HEAD} bytes")]
    TooLong,
}

/// Parse a response head at the start of `buf`: `Ok(None)` when more bytes are needed. Interim
/// (1xx) answers are skipped; what a head consumed is removed from `buf`.
pub(crate) fn parse(
    buf: &mut bytes::BytesMut,
    head_request: bool,
) -> Result<Option<Head>, HeadError> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut fields);
        let len = match parsed.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(HeadError::TooLong)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(HeadError::Malformed(e.to_string())),
        };
        let code = parsed.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)
            .map_err(|_| HeadError::Malformed(format!("status {code}")))?;
        if status.is_informational() {
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(HeadError::Malformed("unrequested protocol switch".into()));
            }
            buf.advance(len);
            continue;
        }
        let http10 = parsed.version == Some(0);
        // the fields become slices of the head's bytes: note where each is
        let mut spans = [(0usize, 0usize, 0usize, 0usize); MAX_HEADERS];
        let count = parsed.headers.len();
        for (span, f) in spans.iter_mut().zip(parsed.headers.iter()) {
            let name = f.name.as_bytes();
            *span = (
                offset(buf, name),
                name.len(),
                offset(buf, f.value),
                f.value.len(),
            );
        }
        let bytes: Bytes = buf.split_to(len).freeze();
        return build(status, http10, &spans[..count], &bytes, head_request).map(Some);
    }
}

fn offset(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

fn build(
    status: StatusCode,
    http10: bool,
    fields: &[(usize, usize, usize, usize)],
    bytes: &Bytes,
    head_request: bool,
) -> Result<Head, HeadError> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    let (mut length, mut chunked, mut other_coding) = (None::<u64>, false, false);
    let mut keep_alive = !http10;
    for &(name_at, name_len, at, len) in fields {
        let name = &bytes[name_at..name_at + name_len];
        let name = HeaderName::from_bytes(name).map_err(|_| {
            HeadError::Malformed(format!("field name {:?}", String::from_utf8_lossy(name)))
        })?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(at..at + len))
            .map_err(|_| HeadError::Malformed(format!("value of {name}")))?;
        if name == header::CONTENT_LENGTH {
            let n = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| HeadError::Malformed("Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("conflicting Content-Length".into()));
            }
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // the last coding decides; anything but chunked last runs until close
            let last = value
                .to_str()
                .unwrap_or("")
                .rsplit(',')
                .next()
                .unwrap_or("");
            chunked = last.trim().eq_ignore_ascii_case("chunked");
            other_coding |= !chunked;
        } else if name == header::CONNECTION {
            for token in value.to_str().unwrap_or("").split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
        headers.append(name, value);
    }
    // after the framing fields were read: the same hygiene as hyper's client answers get
    crate::hop::strip_hop_by_hop(&mut headers);
    let framing =
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if chunked && !other_coding {
            // Content-Length beside chunked is ignored (and must not be passed on)
            headers.remove(header::CONTENT_LENGTH);
            Framing::Chunked
        } else if other_coding || chunked {
            headers.remove(header::CONTENT_LENGTH);
            keep_alive = false;
            Framing::UntilClose
        } else {
            match length {
                Some(n) => Framing::Length(n),
                None => {
                    keep_alive = false;
                    Framing::UntilClose
                }
            }
        };
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *response.headers_mut() = headers;
    Ok(Head {
        response,
        framing,
        keep_alive,
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn head(raw: &str, head_request: bool) -> Result<Option<Head>, HeadError> {
        parse(&mut BytesMut::from(raw), head_request)
    }

    #[test]
    fn a_complete_head_gives_status_fields_and_framing_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\n{}",
        );
        let h = parse(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.response.status(), 200);
        assert_eq!(h.framing, Framing::Length(2));
        assert!(h.keep_alive);
        assert_eq!(h.response.headers()["content-type"], "application/json");
        assert_eq!(h.response.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(&buf[..], b"{}");
    }

    #[test]
    fn a_partial_head_asks_for_more_and_a_huge_one_is_refused() {
        assert!(head("HTTP/1.1 200 OK\r\nContent-", false)
            .unwrap()
            .is_none());
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD + 1));
        assert!(matches!(head(&long, false), Err(HeadError::TooLong)));
        assert!(matches!(
            head("SMTP ready\r\n\r\n", false),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn hop_by_hop_fields_are_dropped_and_close_is_noted() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: close, x-private\r\nX-Private: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\nX-Kept: y\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive);
        assert_eq!(h.framing, Framing::Chunked);
        let names: Vec<_> = h.response.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |raw: &str, head_request| head(raw, head_request).unwrap().unwrap();
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\n\r\n", false).framing,
            Framing::Empty
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).framing,
            Framing::Empty
        );
        let until_close = f("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(until_close.framing, Framing::UntilClose);
        assert!(!until_close.keep_alive);
        let gzip = f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false);
        assert_eq!(gzip.framing, Framing::UntilClose);
        assert!(!f("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).keep_alive);
        assert!(matches!(
            head(
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            ),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn interim_answers_are_skipped() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        );
        let h = parse(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.response.status(), 404);
        assert!(buf.is_empty());
        assert!(head("HTTP/1.1 101 Switching Protocols\r\n\r\n", false).is_err());
    }
}
