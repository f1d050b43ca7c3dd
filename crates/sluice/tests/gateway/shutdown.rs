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
    let in_flight = tokio::spawn(async move {
        let req = http::Request::get(next).body(Default::default()).unwrap();
        send(&client, req).await
    });
    // let the request reach the backend, then stop the gateway while it waits there
    tokio::time::sleep(Duration::from_millis(200)).await;
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
