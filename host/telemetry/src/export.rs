//! The OTLP exporter's HTTP client. The SDK exports from a thread of its own, outside the tokio
//! runtime; each export is handed to the runtime, where Sluice's one client builder (hyper,
//! rustls, the system's roots) sends it.
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use opentelemetry_http::{HttpClient, HttpError};
use sluice_http::client::{self, ClientOptions};

/// Sends export requests on a tokio runtime.
#[derive(Clone)]
pub struct Client {
    http: client::Client,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("export::Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client on the runtime this is called from, each export bounded by `timeout`.
    pub fn on_this_runtime(timeout: Duration) -> Self {
        Self {
            http: client::build(&ClientOptions::connect_within(timeout).pool(1)),
            runtime: tokio::runtime::Handle::current(),
            timeout,
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (http, timeout) = (self.http.clone(), self.timeout);
        let sent = self.runtime.spawn(async move {
            let request = request.map(sluice_http::full_body);
            let answer = tokio::time::timeout(timeout, async {
                let resp = http.request(request).await?;
                let (parts, body) = resp.into_parts();
                let bytes = body.collect().await?.to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, bytes))
            })
            .await;
            match answer {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis()).into()),
            }
        });
        sent.await?
    }
}
