//! The relay against a scripted backend on a loopback socket: each framing, pooling, a stale
//! pooled connection, a broken answer.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// One scripted answer: written in `pieces` (each flushed on its own), then the connection is
/// closed when `close`.
struct Reply {
    pieces: Vec<&'static str>,
    close: bool,
}

fn reply(raw: &'static str) -> Reply {
    Reply {
        pieces: vec![raw],
        close: false,
    }
}

/// A backend answering the n-th request it reads (over any connection) with `script[n]`; it
/// records each request head and counts connections.
struct Scripted {
    authority: http::uri::Authority,
    heads: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<usize>>,
}

async fn scripted(script: Vec<Reply>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let (h, c) = (heads.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            *c.lock().unwrap() += 1;
            let (h, script) = (h.clone(), script.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head: Vec<u8> = buf.drain(..end).collect();
                    h.lock().unwrap().push(String::from_utf8(head).unwrap());
                    let Some(r) = script.lock().unwrap().next() else {
                        return;
                    };
                    for piece in r.pieces {
                        if sock.write_all(piece.as_bytes()).await.is_err() {
                            return;
                        }
                        sock.flush().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    if r.close {
                        return;
                    }
                }
            });
        }
    });
    Scripted {
        authority,
        heads,
        connections,
    }
}

fn relay() -> Relay {
    Relay::new(RelayOptions {
        connect_timeout: Some(Duration::from_secs(2)),
        tcp_keepalive: None,
        max_idle_per_host: 4,
        idle_timeout: Duration::from_secs(60),
    })
}

const GET: &[u8] = b"GET /v1/statement/executing/q/t/1 HTTP/1.1\r\nhost: b\r\n\r\n";

async fn body_of(resp: Response<RelayBody>) -> Result<String, crate::BoxError> {
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn each_framing_is_read_and_the_connection_pooled_after_its_body() {
    let backend = scripted(vec![
        reply(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello",
        ),
        Reply {
            pieces: vec![
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwi",
                "ki\r\n",
                "6;ext=1\r\npedia \r\n",
                "0\r\nX-Trailer: t\r\n\r\n",
            ],
            close: false,
        },
        Reply {
            pieces: vec![
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234",
                "56789",
            ],
            close: false,
        },
        reply("HTTP/1.1 204 No Content\r\n\r\n"),
        Reply {
            pieces: vec!["HTTP/1.1 200 OK\r\n\r\nuntil ", "closed"],
            close: true,
        },
    ])
    .await;
    let relay = relay();
    let a = &backend.authority;

    let resp = relay.send(a, GET, false).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "5");
    assert_eq!(resp.body().as_full().map(|b| &b[..]), Some(&b"hello"[..]));
    // read whole with the head: pooled at once
    assert_eq!(relay.idle(a), 1);
    assert_eq!(body_of(resp).await.unwrap(), "hello");

    let resp = relay.send(a, GET, false).await.unwrap();
    assert!(resp.headers().get("transfer-encoding").is_none());
    assert_eq!(relay.idle(a), 0, "in use until its body is read");
    assert_eq!(body_of(resp).await.unwrap(), "wikipedia ");
    assert_eq!(relay.idle(a), 1);

    let resp = relay.send(a, GET, false).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), "0123456789");
    let resp = relay.send(a, GET, false).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(body_of(resp).await.unwrap(), "");

    let resp = relay.send(a, GET, false).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), "until closed");
    assert_eq!(
        relay.idle(a),
        0,
        "a body that ends with the connection is not pooled"
    );
    assert_eq!(*backend.connections.lock().unwrap(), 1);
    assert_eq!(backend.heads.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_is_replaced_transparently() {
    let backend = scripted(vec![
        Reply {
            pieces: vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
            close: true, // without saying so: the relay pools it
        },
        reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain"),
    ])
    .await;
    let relay = relay();
    let a = &backend.authority;
    assert_eq!(
        body_of(relay.send(a, GET, false).await.unwrap())
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(relay.idle(a), 1);
    let resp = relay.send(a, GET, false).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), "again");
    assert_eq!(*backend.connections.lock().unwrap(), 2);
}

#[tokio::test]
async fn a_head_answer_has_no_body_and_the_connection_stays_usable() {
    let backend = scripted(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"),
    ])
    .await;
    let relay = relay();
    let a = &backend.authority;
    let resp = relay
        .send(a, b"HEAD / HTTP/1.1\r\nhost: b\r\n\r\n", true)
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-length"], "42");
    assert_eq!(body_of(resp).await.unwrap(), "");
    assert_eq!(
        body_of(relay.send(a, GET, false).await.unwrap())
            .await
            .unwrap(),
        "x"
    );
    assert_eq!(*backend.connections.lock().unwrap(), 1);
}

#[tokio::test]
async fn broken_answers_are_errors_and_their_connections_dropped() {
    let backend = scripted(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"),
        reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        Reply {
            pieces: vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
            close: true,
        },
        Reply {
            pieces: vec!["HTTP/1.1 200 OK\r\nContent-"],
            close: true,
        },
    ])
    .await;
    let relay = relay();
    let a = &backend.authority;
    assert!(matches!(
        relay.send(a, GET, false).await,
        Err(RelayError::Head(_))
    ));
    let resp = relay.send(a, GET, false).await.unwrap();
    let err = body_of(resp).await.unwrap_err().to_string();
    assert!(err.contains("chunk size"), "{err}");
    let resp = relay.send(a, GET, false).await.unwrap();
    assert!(body_of(resp).await.is_err(), "a body cut short is an error");
    assert!(matches!(
        relay.send(a, GET, false).await,
        Err(RelayError::Closed)
    ));
    assert_eq!(relay.idle(a), 0);
}

#[tokio::test]
async fn nobody_listening_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a: http::uri::Authority = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(matches!(
        relay().send(&a, GET, false).await,
        Err(RelayError::Connect(_))
    ));
}

#[tokio::test]
async fn a_statement_is_never_sent_twice() {
    let backend = scripted(vec![
        Reply {
            pieces: vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"],
            close: true, // closed while pooled: found by the check before reuse
        },
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
        Reply {
            pieces: vec![],
            close: true, // read, then closed without an answer
        },
    ])
    .await;
    let relay = relay();
    let a = &backend.authority;
    const POST: &[u8] = b"POST /v1/statement HTTP/1.1\r\nhost: b\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(
        body_of(relay.send_once(a, POST).await.unwrap())
            .await
            .unwrap(),
        "a"
    );
    // the backend closed the pooled connection: seen before the statement is written
    let conn = relay.pool.bucket(a.as_str()).take().unwrap();
    conn.stream.readable().await.unwrap();
    assert!(!conn.is_open());
    relay.pool.bucket(a.as_str()).put(conn);
    assert_eq!(
        body_of(relay.send_once(a, POST).await.unwrap())
            .await
            .unwrap(),
        "b"
    );
    assert_eq!(*backend.connections.lock().unwrap(), 2);
    assert!(matches!(
        relay.send_once(a, POST).await,
        Err(RelayError::Closed)
    ));
    assert_eq!(
        backend.heads.lock().unwrap().len(),
        3,
        "sent once each, never repeated"
    );
}
