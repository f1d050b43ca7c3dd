use std::time::Duration;

use http::StatusCode;

use sluice_testkit::*;

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    let (_, first) = gw.submit("SELECT 1 fake:delay_ms=600", &[]).await;
    let next = first["nextUri"].as_str().unwrap().to_string();
    let client = gw.client.clone();
    let seen = a.requests();
    let in_flight = tokio::spawn(async move {
        let req = http::Request::get(next).body(Default::default()).unwrap();
        send(&client, req).await
    });
    // once the request reached the backend (which holds it for 600 ms), stop the gateway
    for _ in 0..2000 {
        if a.requests() > seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(a.requests() > seen, "the request never reached the backend");
    let addr = gw.gateway.proxy_addr;
    let stopping = tokio::spawn(gw.stop());
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(json(&body).get("nextUri").is_some());
    stopping.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener is closed"
    );
}
