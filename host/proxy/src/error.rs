//! Data-path errors. Each variant says where it came from, maps to one HTTP status, and renders as a
//! Trino-style JSON error so that clients show a readable message.
use http::{Response, StatusCode};
use serde_json::json;

use sluice_http::Body;
use sluice_routing::RouteError;

/// Everything that can stop Sluice from answering a client request with a backend's answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The path is not one Sluice forwards.
    #[error("path {0} is not served by this gateway")]
    NotFound(String),
    /// The request carries a query id that no cluster is known to own.
    #[error("query {0} is not known to this gateway")]
    UnknownQuery(String),
    /// The client asked for a routing group no backend belongs to.
    #[error("routing group '{0}' does not exist")]
    UnknownGroup(String),
    /// The group exists but none of its backends is active and healthy.
    #[error("no healthy backend in routing group '{0}'")]
    NoHealthyBackend(String),
    /// The request itself is malformed (bad body, body too large, bad header).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A router rejected the query on purpose.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    /// The backend could not be reached (connection refused, DNS, reset before an answer).
    #[error("backend '{backend}' is unreachable: {reason}")]
    BackendUnreachable { backend: String, reason: String },
    /// The backend accepted the connection but did not answer in time.
    #[error("backend '{backend}' did not answer within {timeout_ms} ms")]
    BackendTimeout { backend: String, timeout_ms: u64 },
    /// The backend answered something Sluice cannot use.
    #[error("backend '{backend}' sent an invalid response: {reason}")]
    BackendInvalid { backend: String, reason: String },
    /// The gateway is shutting down.
    #[error("gateway is shutting down")]
    ShuttingDown,
}

impl From<RouteError> for GatewayError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::UnknownGroup(g) => Self::UnknownGroup(g),
            RouteError::NoHealthyBackend(g) => Self::NoHealthyBackend(g),
            RouteError::Rejected { status, message } => Self::Rejected { status, message },
        }
    }
}

impl GatewayError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) | Self::UnknownQuery(_) => StatusCode::NOT_FOUND,
            Self::UnknownGroup(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NoHealthyBackend(_) | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Rejected { status, .. } => *status,
            Self::BackendUnreachable { .. } | Self::BackendInvalid { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Self::BackendTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Trino's `errorName` for this error (Trino's own names where one fits).
    fn error_name(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NOT_FOUND",
            Self::UnknownQuery(_) => "QUERY_NOT_FOUND",
            Self::UnknownGroup(_) => "ROUTING_GROUP_NOT_FOUND",
            Self::NoHealthyBackend(_) => "NO_NODES_AVAILABLE",
            Self::BadRequest(_) => "GENERIC_USER_ERROR",
            Self::Rejected { .. } => "QUERY_REJECTED",
            Self::BackendUnreachable { .. } => "REMOTE_HOST_GONE",
            Self::BackendTimeout { .. } => "REMOTE_TASK_ERROR",
            Self::BackendInvalid { .. } => "GENERIC_INTERNAL_ERROR",
            Self::ShuttingDown => "SERVER_SHUTTING_DOWN",
        }
    }

    /// Trino's `errorType`: USER_ERROR for what the client can fix, EXTERNAL otherwise.
    fn error_type(&self) -> &'static str {
        match self {
            Self::NotFound(_)
            | Self::UnknownQuery(_)
            | Self::UnknownGroup(_)
            | Self::BadRequest(_)
            | Self::Rejected { .. } => "USER_ERROR",
            _ => "EXTERNAL",
        }
    }

    /// Render as a response: the status plus a JSON body shaped like Trino's `QueryError`.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let body = json!({
            "error": {
                "message": self.to_string(),
                "errorCode": status.as_u16(),
                "errorName": self.error_name(),
                "errorType": self.error_type(),
                "errorLocation": null,
                "failureInfo": { "type": "io.sluice.GatewayError", "message": self.to_string(), "suppressed": [], "stack": [] }
            },
            "source": "sluice"
        });
        sluice_http::json_response(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn renders_trino_style_json_with_the_status() {
        let resp = GatewayError::NoHealthyBackend("etl".into()).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["errorName"], "NO_NODES_AVAILABLE");
        assert!(v["error"]["message"].as_str().unwrap().contains("'etl'"));
    }

    #[test]
    fn statuses_match_the_documented_table() {
        assert_eq!(
            GatewayError::UnknownQuery("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            GatewayError::UnknownGroup("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        let unreachable = GatewayError::BackendUnreachable {
            backend: "a".into(),
            reason: "refused".into(),
        };
        assert_eq!(unreachable.status(), StatusCode::BAD_GATEWAY);
        let timeout = GatewayError::BackendTimeout {
            backend: "a".into(),
            timeout_ms: 5,
        };
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
