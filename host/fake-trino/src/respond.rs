//! The fake coordinator's answers: their shapes (JSON, text, empty), a query's info, a page's
//! stats, a failure.
use http::{header, HeaderMap, Response, StatusCode};
use serde_json::{json, Value};
use sluice_http::{full_body, Body};

use crate::state::Query;

pub(crate) fn forwarded_view(headers: &HeaderMap) -> Value {
    let get = |n: &str| header_str(headers, n).map(String::from);
    json!({"for": get("x-forwarded-for"), "proto": get("x-forwarded-proto"),
           "host": get("x-forwarded-host"), "port": get("x-forwarded-port"), "connection": get("connection")})
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn json_resp(status: StatusCode, v: Value) -> Response<Body> {
    sluice_http::json_response(status, &v)
}

pub(crate) fn text(status: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(full_body(s.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full_body(bytes::Bytes::new()));
    *r.status_mut() = status;
    r
}

pub(crate) fn query_info(id: &str, q: &Query, base: &str) -> Value {
    json!({
        "queryId": id,
        "state": q.state.as_str(),
        "query": q.sql,
        "session": {"user": q.user},
        "self": format!("{base}/v1/query/{id}"),
    })
}

pub(crate) fn stats(state: &str) -> Value {
    json!({"state": state, "queued": state == "QUEUED", "scheduled": state != "QUEUED", "nodes": 1,
           "totalSplits": 1, "queuedSplits": 0, "runningSplits": 0, "completedSplits": 1,
           "cpuTimeMillis": 1, "wallTimeMillis": 1, "queuedTimeMillis": 0, "elapsedTimeMillis": 1,
           "processedRows": 0, "processedBytes": 0, "physicalInputBytes": 0, "peakMemoryBytes": 0,
           "spilledBytes": 0})
}

pub(crate) fn failed(id: &str, base: &str, name: &str, message: &str) -> Value {
    json!({"id": id, "infoUri": format!("{base}/ui/query.html?{id}"), "stats": stats("FAILED"), "warnings": [],
           "error": {"message": message, "errorCode": 1, "errorName": name, "errorType": "USER_ERROR",
                     "failureInfo": {"type": "io.trino.spi.TrinoException", "message": message, "suppressed": [], "stack": []}}})
}
