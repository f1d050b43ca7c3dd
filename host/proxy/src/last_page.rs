//! Seeing a query end as its answers pass: a page of the statement protocol without `nextUri` is
//! its last (finished, failed or cancelled). [`Watched`] passes a body on untouched and calls
//! back once when it ended without the field (a JSON key, which a string value cannot fake:
//! its quotes would be escaped).
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use memchr::memmem;

use sluice_http::{Body, BoxError};

const KEY: &[u8] = b"\"nextUri\"";

/// Whether `page` (a whole answer) is a query's last.
pub fn is_last(page: &[u8]) -> bool {
    memmem::find(page, KEY).is_none()
}

/// A body passed on as it is, calling `on_last` when it ends without a `nextUri` key.
pub struct Watched {
    inner: Body,
    /// The last bytes of the previous frame, for a key cut by a frame boundary.
    carry: Vec<u8>,
    seen: bool,
    on_last: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Watched {
    /// Watch `inner`.
    pub fn new(inner: Body, on_last: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            inner,
            carry: Vec::new(),
            seen: false,
            on_last: Some(Box::new(on_last)),
        }
    }

    fn ended(&mut self) {
        if let Some(f) = self.on_last.take().filter(|_| !self.seen) {
            f();
        }
    }

    fn look(&mut self, data: &[u8]) {
        if self.seen {
            return;
        }
        let tail = KEY.len() - 1;
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(&data[..data.len().min(tail)]);
        if memmem::find(&window, KEY).is_some() || memmem::find(data, KEY).is_some() {
            self.seen = true;
            return;
        }
        // the last bytes of everything so far
        self.carry = if data.len() >= tail {
            data[data.len() - tail..].to_vec()
        } else {
            // `window` is the old carry and all of `data`
            let cut = window.len().saturating_sub(tail);
            window.split_off(cut)
        };
    }
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    this.look(&data);
                }
                // hyper stops polling a body that says it has ended
                if this.inner.is_end_stream() {
                    this.ended();
                }
            }
            Poll::Ready(None) => this.ended(),
            // a broken answer says nothing about the query
            Poll::Ready(Some(Err(_))) => this.on_last = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    async fn ends_last(frames: &[&'static str]) -> bool {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = frames
            .iter()
            .map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes()))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let watched = Watched::new(body, move || f.store(true, Ordering::SeqCst));
        let all = watched.collect().await.unwrap().to_bytes();
        assert_eq!(is_last(&all), fired.load(Ordering::SeqCst));
        fired.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_page_without_next_uri_is_the_last_even_cut_anywhere() {
        assert!(ends_last(&[r#"{"id":"q","stats":{"state":"FINISHED"}}"#]).await);
        assert!(!ends_last(&[r#"{"id":"q","nextUri":"http://x/1"}"#]).await);
        // the key cut by every frame boundary is still seen
        let page = r#"{"data":[[1]],"nextUri":"http://x/1"}"#;
        for cut in 1..page.len() {
            let (a, b) = page.split_at(cut);
            let (a, b): (&'static str, &'static str) = (
                Box::leak(a.to_string().into_boxed_str()),
                Box::leak(b.to_string().into_boxed_str()),
            );
            assert!(!ends_last(&[a, b]).await, "cut at {cut}");
        }
        assert!(!ends_last(&["{\"next", "U", "ri\":1}"]).await);
        // a value that merely says nextUri is escaped, and does not count
        assert!(ends_last(&[r#"{"data":[["\"nextUri\""]]}"#]).await);
    }

    #[tokio::test]
    async fn a_whole_body_is_judged_without_being_polled_past_its_end() {
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let mut w = Watched::new(sluice_http::full_body(r#"{"id":"q"}"#), move || {
            f.store(true, Ordering::SeqCst)
        });
        // hyper reads one frame of a body whose length it knows, and stops
        w.frame().await.unwrap().unwrap();
        assert!(w.is_end_stream());
        assert!(fired.load(Ordering::SeqCst));
    }
}
