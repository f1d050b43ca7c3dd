//! [`QueryLocation`], the owner of one query, as every tier stores it, and the key it is stored
//! under ([`query_key`]).
use std::sync::Arc;

use bytes::Bytes;

/// The owner of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLocation {
    /// Backend name.
    pub backend: Arc<str>,
    /// Routing group the query was routed in.
    pub group: Arc<str>,
}

impl QueryLocation {
    pub(crate) fn encode(&self) -> Bytes {
        Bytes::from(format!("{}\t{}", self.backend, self.group))
    }

    pub(crate) fn decode(v: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(v).ok()?;
        let (b, g) = s.split_once('\t')?;
        Some(Self {
            backend: b.into(),
            group: g.into(),
        })
    }
}

/// What every query location's key starts with.
pub const QUERY_KEY_PREFIX: &str = "sluice:query:";

/// The key of a query's location in every tier.
pub fn query_key(id: &str) -> String {
    format!("{QUERY_KEY_PREFIX}{id}")
}
