//! The relay against a backend that speaks HTTP/1.1 as Jetty does, not as the fake coordinator
//! (hyper) does: result pages in chunks, a segment URI cut by a chunk boundary, a connection
//! closed after an answer that says so. Written byte by byte on a loopback socket.
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use sluice_config::StatsSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use sluice_testkit::*;

const ID: &str = "20261206_000000_00001_raw01";

/// What the backend saw: (connection number, request line).
type Seen = Arc<Mutex<Vec<(usize, String)>>>;

fn answer(request_line: &str) -> (Vec<u8>, bool) {
    let json = |body: &str, extra: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    if request_line.starts_with("GET /v1/info") {
        return (json(r#"{"starting":false,"coordinator":true}"#, ""), false);
    }
    if request_line.starts_with("POST /v1/statement ") {
        let body = format!(r#"{{"id":"{ID}","stats":{{"state":"QUEUED"}}}}"#);
        return (json(&body, ""), false);
    }
    if request_line.contains("/t/close") {
        return (
            json(r#"{"stats":{"state":"RUNNING"}}"#, "Connection: close\r\n"),
            true,
        );
    }
    // a page in chunks, the segment URI cut in the middle of its marker and of its token
    let pieces = [
        r#"{"id":"20261206_000000_00001_raw01","data":{"segments":[{"type":"spooled","uri":"http://b/v1/spo"#,
        r#"oled/download/tok-ab"#,
        r#"c","ackUri":"http://b/v1/spooled/ack/tok-abc"}]},"stats":{"state":"RUNNING"}}"#,
    ];
    let mut out =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for p in pieces {
        out.extend_from_slice(format!("{:x};ext=1\r\n{p}\r\n", p.len()).as_bytes());
    }
    out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    (out, false)
}

async fn jetty_like() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            n += 1;
            let (conn, seen) = (n, s.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < end + length {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    buf.drain(..end + length);
                    let line = head.lines().next().unwrap_or("").to_string();
                    seen.lock().unwrap().push((conn, line.clone()));
                    let (bytes, close) = answer(&line);
                    if sock.write_all(&bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn chunked_pages_are_relayed_with_their_segments_rewritten_and_a_closed_connection_replaced()
{
    let (url, seen) = jetty_like().await;
    let mut c = config(&[("raw", "adhoc", &url)]);
    c.backends[0].stats = Some(StatsSource::InfoOnly);
    let gw = Gw::start(c).await;
    let (status, first) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["id"], ID);

    let page = |n: &str| gw.url(&format!("/v1/statement/executing/{ID}/t/{n}"));
    for n in ["1", "2", "close", "3"] {
        let (status, body) = gw
            .call(Method::GET, &page(n), &[("X-Trino-User", "u")], "")
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{n}: {}",
            String::from_utf8_lossy(&body)
        );
        let v = json(&body);
        if n == "close" {
            continue;
        }
        let segment = &v["data"]["segments"][0];
        let expected = format!("?queryId={ID}&spooledBackend=raw");
        for key in ["uri", "ackUri"] {
            let uri = segment[key].as_str().unwrap();
            assert!(
                uri.ends_with(&format!("/tok-abc{expected}")),
                "{key}: {uri}"
            );
        }
    }
    // the follow-ups shared one backend connection until the answer that closed it; the next
    // went on a new one
    let seen = seen.lock().unwrap().clone();
    let conn_of = |n: &str| {
        seen.iter()
            .find(|(_, line)| line.contains(&format!("/t/{n} ")))
            .map(|(c, _)| *c)
            .unwrap_or_else(|| panic!("no request for page {n}: {seen:?}"))
    };
    assert_eq!(conn_of("1"), conn_of("2"));
    assert_eq!(conn_of("2"), conn_of("close"));
    assert_ne!(conn_of("close"), conn_of("3"));
    gw.stop().await;
}
