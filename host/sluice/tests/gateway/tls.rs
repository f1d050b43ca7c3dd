//! TLS everywhere, with a private CA made by the test: HTTPS clients, HTTPS backends, the admin
//! listener, a plain listener beside the HTTPS one, certificate renewal without a restart, mutual
//! TLS. The stores over TLS are in `tls_stores`.
use std::time::Duration;

use http::{Method, StatusCode};
use sluice_config::{ClientTlsConfig, ServerTlsConfig, Serving};
use sluice_http::tls::{client_config, ClientTls};
use sluice_http::tls_server::ServerTls;
use sluice_testkit::tls::{Pair, TestCa};
use sluice_testkit::*;
use tokio::net::{TcpListener, TcpStream};

/// A fake coordinator serving HTTPS with a certificate from `ca`.
async fn tls_cluster(name: &str, ca: &TestCa) -> FakeTrino {
    let pair = ca.loopback(name);
    let tls = ServerTls::from_files("fake", &pair.cert, &pair.key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let opts = FakeOptions {
        name: name.into(),
        ..FakeOptions::default()
    };
    FakeTrino::start_tls(listener, opts, Some(tls)).unwrap()
}

fn server_tls(pair: &Pair, listen: Option<&str>) -> Option<ServerTlsConfig> {
    Some(ServerTlsConfig {
        cert: pair.cert.clone(),
        key: pair.key.clone(),
        listen: listen.map(|l| l.parse().unwrap()),
        client_ca: None,
    })
}

/// Trust only `ca` for the backends.
fn trust_only(ca: &TestCa) -> ClientTlsConfig {
    ClientTlsConfig {
        ca: Some(ca.ca_pem.clone()),
        system_roots: false,
        ..ClientTlsConfig::default()
    }
}

/// The leaf certificate a TLS listener at `addr` presents to a client trusting `ca`.
async fn presented(addr: std::net::SocketAddr, ca: &TestCa) -> Vec<u8> {
    let trust = ClientTls {
        ca: Some(ca.ca_pem.clone()),
        ..ClientTls::default()
    };
    let connector = tokio_rustls::TlsConnector::from(client_config(&trust).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The DER of the first certificate in a PEM file.
fn der(pem: &std::path::Path) -> Vec<u8> {
    sluice_http::tls::load_certs(pem).unwrap()[0].to_vec()
}

/// `sluice_tls_handshake_errors_total{listener="…"}` from `/metrics`.
async fn handshake_errors(gw: &Gw, listener: &str) -> u64 {
    let (_, body) = gw.admin(Method::GET, "/metrics").await;
    let text = String::from_utf8_lossy(&body).to_string();
    let line = format!("sluice_tls_handshake_errors_total{{listener=\"{listener}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn https_clients_reach_https_backends_through_a_private_ca() {
    https_end_to_end(Serving::Shared).await;
}

#[tokio::test]
async fn https_with_a_thread_per_core() {
    // per-core tests take turns: others count worker threads by name
    let _alone = crate::per_core::WORKERS.lock().await;
    https_end_to_end(Serving::PerCore).await;
}

async fn https_end_to_end(serving: Serving) {
    let ca = TestCa::new("everywhere");
    let (c1, c2) = (tls_cluster("c1", &ca).await, tls_cluster("c2", &ca).await);
    assert!(c1.url().starts_with("https://"));
    let mut cfg = config(&[("c1", "adhoc", &c1.url()), ("c2", "adhoc", &c2.url())]);
    cfg.backend_tls = trust_only(&ca);
    cfg.proxy.tls = server_tls(&ca.loopback("gateway"), None);
    cfg.admin.tls = server_tls(&ca.loopback("admin"), None);
    cfg.proxy.serving = serving;
    let gw = Gw::start_trusting(cfg, Some(&ca.ca_pem)).await;
    // the health checks reached both clusters over TLS
    assert_eq!(gw.backend_health("c1").await, "HEALTHY");
    assert_eq!(gw.backend_health("c2").await, "HEALTHY");
    let mut owners = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (status, first) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        // every nextUri is https and names the gateway (drain checks it, page by page)
        assert!(first["nextUri"].as_str().unwrap().starts_with("https://"));
        let (rows, last) = gw.drain(&first).await;
        assert_eq!(last["stats"]["state"], "FINISHED", "{last}");
        owners.insert(owner(&rows));
    }
    assert_eq!(owners.len(), 2, "both clusters served queries: {owners:?}");
    assert_eq!(c1.unknown_query_requests() + c2.unknown_query_requests(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_backend_whose_certificate_is_not_trusted_is_unhealthy_and_never_sent_a_query() {
    let ca = TestCa::new("untrusted");
    let other = TestCa::new("other");
    let c1 = tls_cluster("c1", &ca).await;
    let mut cfg = config(&[("c1", "adhoc", &c1.url())]);
    cfg.backend_tls = trust_only(&other);
    let gw = Gw::start(cfg).await;
    assert_eq!(gw.backend_health("c1").await, "UNHEALTHY");
    let (status, body) = gw.submit("SELECT 1", &[]).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert_eq!(c1.queries_created(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_plain_listener_beside_the_https_one_and_failed_handshakes_counted() {
    let ca = TestCa::new("beside");
    let c1 = cluster("c1").await;
    let mut cfg = config(&[("c1", "adhoc", &c1.url())]);
    cfg.proxy.tls = server_tls(&ca.loopback("gateway"), Some("127.0.0.1:0"));
    let gw = Gw::start_trusting(cfg, Some(&ca.ca_pem)).await;
    let tls_addr = gw.gateway.tls_addr.expect("a second listener");
    // plain: as before, nextUri in http
    let (status, first) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first["nextUri"].as_str().unwrap().starts_with("http://"));
    gw.drain(&first).await;
    // https beside it: nextUri in https on its own port
    let url = format!("https://127.0.0.1:{}/v1/statement", tls_addr.port());
    let (status, body) = gw
        .call(Method::POST, &url, &[("X-Trino-User", "test")], "SELECT 1")
        .await;
    assert_eq!(status, StatusCode::OK);
    let next = json(&body)["nextUri"].as_str().unwrap().to_string();
    assert!(
        next.starts_with(&format!("https://127.0.0.1:{}/", tls_addr.port())),
        "{next}"
    );
    let (status, _) = gw.call(Method::GET, &next, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    // plain HTTP to the TLS port, and a client that does not trust the CA: both refused, counted
    assert_eq!(handshake_errors(&gw, "proxy").await, 0);
    let plain = format!("http://127.0.0.1:{}/v1/info", tls_addr.port());
    let refused = sluice_http::client::build(&Default::default());
    let req = http::Request::get(plain)
        .body(sluice_http::empty_body())
        .unwrap();
    assert!(refused.request(req).await.is_err());
    let https = format!("https://127.0.0.1:{}/v1/info", tls_addr.port());
    let req = http::Request::get(https)
        .body(sluice_http::empty_body())
        .unwrap();
    assert!(
        refused.request(req).await.is_err(),
        "the CA is not a system root"
    );
    let mut seen = 0;
    for _ in 0..200 {
        seen = handshake_errors(&gw, "proxy").await;
        if seen >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, 2);
    // and the listener still serves
    let (status, _) = gw
        .call(Method::POST, &url, &[("X-Trino-User", "test")], "SELECT 1")
        .await;
    assert_eq!(status, StatusCode::OK);
    gw.stop().await;
}

const TOKEN: &str = "tls-test-admin-token";

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let ca = TestCa::new("renewal");
    let c1 = cluster("c1").await;
    let dir = ca.dir().to_path_buf();
    let first = ca.loopback("gateway");
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0, tokens: [{{ token: {TOKEN}, role: admin }}] }}\n\
         backends:\n  - {{ name: c1, url: '{}', group: adhoc }}\n\
         proxy:\n  tls: {{ cert: '{}', key: '{}' }}\nstore: {{ url: '' }}\n",
        c1.url(),
        first.cert.display(),
        first.key.display()
    );
    let path = dir.join("sluice.yaml");
    std::fs::write(&path, yaml).unwrap();
    let gw = Gw::start_file_trusting(&path, Some(&ca.ca_pem)).await;
    let addr = gw.gateway.proxy_addr;
    assert_eq!(presented(addr, &ca).await, der(&first.cert));
    // a renewal: new files renamed over the old ones, as certbot or a Kubernetes secret does
    let renewed = ca.issue("renewed", "renewed", &["localhost", "127.0.0.1"]);
    std::fs::rename(&renewed.key, &first.key).unwrap();
    std::fs::rename(&renewed.cert, &first.cert).unwrap();
    let want = der(&first.cert);
    let mut now = Vec::new();
    for _ in 0..500 {
        now = presented(addr, &ca).await;
        if now == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(now, want, "the renewed certificate is presented");
    // a broken file: a reload names it and is refused; the renewed certificate stays in use
    std::fs::write(&first.cert, "not a certificate").unwrap();
    let (status, report) = gw
        .admin_as(
            Method::POST,
            "/api/v1/reload",
            Some(TOKEN),
            Default::default(),
        )
        .await;
    assert_eq!(report["ok"], false, "{status} {report}");
    assert!(report.to_string().contains("proxy.tls"), "{report}");
    assert_eq!(presented(addr, &ca).await, want);
    let (status, _) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn mutual_tls_a_backend_that_wants_a_client_certificate_and_clients_that_must_show_one() {
    let ca = TestCa::new("mutual");
    let pair = ca.loopback("c1");
    let tls = ServerTls::from_files_requiring("fake", &pair.cert, &pair.key, Some(&ca.ca_pem));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let opts = FakeOptions {
        name: "c1".into(),
        ..FakeOptions::default()
    };
    let c1 = FakeTrino::start_tls(listener, opts, Some(tls.unwrap())).unwrap();
    let me = ca.issue("sluice-client", "sluice", &["sluice"]);
    // without a client certificate the coordinator refuses Sluice's health checks
    let mut cfg = config(&[("c1", "adhoc", &c1.url())]);
    cfg.backend_tls = trust_only(&ca);
    let gw = Gw::start(cfg.clone()).await;
    assert_eq!(gw.backend_health("c1").await, "UNHEALTHY");
    gw.stop().await;
    // with one, it serves; and Sluice's own listener asks its clients for one
    cfg.backend_tls.client_cert = Some(me.cert.clone());
    cfg.backend_tls.client_key = Some(me.key.clone());
    let mut listener_tls = server_tls(&ca.loopback("gateway"), None).unwrap();
    listener_tls.client_ca = Some(ca.ca_pem.clone());
    cfg.proxy.tls = Some(listener_tls);
    let gw = Gw::start_trusting(cfg, Some(&ca.ca_pem)).await;
    assert_eq!(gw.backend_health("c1").await, "HEALTHY");
    let url = gw.url("/v1/statement");
    let post = |client: &sluice_http::client::Client| {
        let req = http::Request::post(url.clone())
            .header("X-Trino-User", "test")
            .body(sluice_http::full_body("SELECT 1"))
            .unwrap();
        client.request(req)
    };
    // gw's own client shows no certificate: refused
    assert!(post(&gw.client).await.is_err());
    let with_cert = sluice_http::client::build(
        &sluice_http::client::ClientOptions::default().tls(Some(
            client_config(&ClientTls {
                ca: Some(ca.ca_pem.clone()),
                client_cert: Some((me.cert.clone(), me.key.clone())),
                ..ClientTls::default()
            })
            .unwrap(),
        )),
    );
    let resp = post(&with_cert)
        .await
        .expect("a client with a certificate is served");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(c1.queries_created(), 1);
    gw.stop().await;
}
