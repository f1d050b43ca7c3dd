//! Targets on bodies: a coordinator's JSON answers (URIs rewritten, also as a stream cut
//! anywhere) and the admin API's multipart uploads.
use bytes::Bytes;
use sluice_http::multipart;
use sluice_proxy::rewrite::rewrite_uris;
use sluice_proxy::spooled::{params, Rewriter};

use crate::fields;

/// The query string Sluice appends to segment URIs in this target.
fn segment_params() -> String {
    params("20240101_000000_00001_fuzz", "blue-1")
}

/// A coordinator answer, whole and streamed: the `nextUri` rewrite yields JSON or the body as it
/// was; the segment-URI rewrite gives the same bytes however the stream is cut into chunks, and
/// taking out what it appended gives back the original.
pub fn rewrite(data: &[u8]) {
    let [cuts, body] = fields::<2>(data);
    let body = Bytes::copy_from_slice(body);
    let out = rewrite_uris(&body, "https://gateway.example:8443");
    if out != body {
        let _: serde_json::Value = serde_json::from_slice(&out).expect("rewritten body is JSON");
    }

    let whole = Rewriter::new(segment_params()).rewrite_all(body.clone());
    let mut streamed = Rewriter::new(segment_params());
    let mut got = Vec::with_capacity(whole.len());
    let mut at = 0;
    for cut in cuts {
        let end = (at + usize::from(*cut)).min(body.len());
        got.extend_from_slice(&streamed.push_bytes(body.slice(at..end)));
        at = end;
    }
    got.extend_from_slice(&streamed.push_bytes(body.slice(at..)));
    got.extend_from_slice(&streamed.finish());
    assert_eq!(
        got,
        whole.to_vec(),
        "chunked rewrite differs from whole rewrite"
    );

    let needle = segment_params();
    if !body.windows(needle.len()).any(|w| w == needle.as_bytes()) {
        let text = String::from_utf8_lossy(&whole);
        let undone = text
            .replace(&format!("?{needle}&"), "?")
            .replace(&format!("?{needle}"), "");
        assert_eq!(
            undone,
            String::from_utf8_lossy(&body),
            "rewrite changed more than it appended"
        );
    }
}

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// An upload: any body is read or refused without panicking, every part returned is one the
/// caller accepts; an upload Sluice's CLI builds reads back as the module and config it carried.
pub fn multipart(data: &[u8]) {
    let [boundary, body] = fields::<2>(data);
    let boundary = String::from_utf8_lossy(boundary).into_owned();
    let names = ["module", "config"];
    let read = |body: Bytes, boundary: String| {
        RT.with(|rt| rt.block_on(multipart::parts(body, boundary, &names)))
    };
    if !boundary.is_empty() {
        if let Ok(parts) = read(Bytes::copy_from_slice(body), boundary) {
            assert!(parts.iter().all(|(n, _)| names.contains(&n.as_str())));
            assert!(parts.len() <= names.len());
        }
    }
    let config = String::from_utf8_lossy(body);
    let (content_type, form) = multipart::upload(body, &config);
    let boundary = multipart::boundary(&content_type).expect("our own boundary");
    let parts = read(form, boundary).expect("our own upload reads back");
    assert_eq!(parts.len(), 2);
    assert_eq!(&parts[0].1[..], body);
    assert_eq!(&parts[1].1[..], config.as_bytes());
}
