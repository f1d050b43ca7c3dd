//! The last resort: ask every active backend `GET /v1/query/{id}`, concurrently, with one time
//! limit; the backend that answers 200 owns the query.
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use sluice_cluster::{Backend, Cluster, Credentials};
use sluice_http::client::{self, Client, ClientOptions};
use sluice_http::tls::Outbound;

/// Marks search probes (so logs, and the fake coordinator, can tell them from follow-ups).
pub const SEARCH_HEADER: &str = "x-sluice-search";

/// Finds the owner of a query by asking the clusters.
pub struct BackendSearch {
    cluster: Arc<Cluster>,
    client: Client,
    timeout: Duration,
    credentials: Credentials,
}

impl BackendSearch {
    /// A search over `cluster`'s backends, authenticated with `credentials`, trusting `tls` for
    /// `https://` backends (`None`: the system's roots).
    pub fn new(
        cluster: Arc<Cluster>,
        timeout: Duration,
        credentials: Credentials,
        tls: Option<Outbound>,
    ) -> Self {
        let client = client::build(&ClientOptions::connect_within(timeout).pool(4).tls(tls));
        Self {
            cluster,
            client,
            timeout,
            credentials,
        }
    }

    /// The backend that knows `query_id`, if one answers in time.
    pub async fn find(&self, query_id: &str) -> Option<Arc<Backend>> {
        let backends = self.cluster.backends();
        // every backend: a deactivated or draining one still owns its running queries
        let asks = backends.iter().map(|b| {
            let b = b.clone();
            let uri = format!("{}/v1/query/{query_id}", b.config.url.trim_end_matches('/'));
            let client = self.client.clone();
            let credentials = self.credentials.clone();
            Box::pin(async move {
                let req = credentials
                    .apply(Request::get(uri))
                    .header(SEARCH_HEADER, "1")
                    .body(sluice_http::empty_body())
                    .ok()?;
                let resp = client.request(req).await.ok()?;
                resp.status().is_success().then_some(b)
            })
        });
        let all: Vec<_> = asks.collect();
        if all.is_empty() {
            return None;
        }
        // first 200 wins; the rest are dropped
        let found = async {
            let mut pending = all;
            while !pending.is_empty() {
                let (result, _, rest) = futures_util::future::select_all(pending).await;
                if result.is_some() {
                    return result;
                }
                pending = rest;
            }
            None
        };
        tokio::time::timeout(self.timeout, found)
            .await
            .ok()
            .flatten()
    }
}
