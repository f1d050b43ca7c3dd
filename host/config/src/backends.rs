//! `backends:`: the Trino clusters behind the gateway.
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::Invalid;
use crate::StatsSource;

/// One Trino cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Unique name, used in logs, errors and the query → backend mapping.
    pub name: String,
    /// Where Sluice sends requests (`http://host:port` of the coordinator).
    pub url: String,
    /// Routing group this backend serves (default `adhoc`).
    #[serde(default = "defaults::group")]
    pub group: String,
    /// Inactive backends are never chosen for new queries (default true).
    #[serde(default = "defaults::yes")]
    pub active: bool,
    /// Draining: no new queries, follow-ups still served, until it runs nothing (default false;
    /// set by `POST /api/v1/backends/{name}/drain`, cleared by activate).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// The URL users see for this cluster (its web UI), if different from `url`.
    #[serde(default)]
    pub external_url: Option<String>,
    /// Rewrite `nextUri`, `infoUri` and `partialCancelUri` in JSON answers to point at Sluice, for
    /// coordinators that do not honour `X-Forwarded-*` (default false).
    #[serde(default)]
    pub rewrite_next_uri: bool,
    /// Where this backend's running/queued counts come from; default: `health.stats`.
    #[serde(default)]
    pub stats: Option<StatsSource>,
    /// Queries Sluice runs on this backend at most at once (none: no limit). At the limit it
    /// gets no new query: another of its group with room does, else the query waits in the
    /// queue (`queue:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queries: Option<u32>,
}

impl BackendConfig {
    /// Backend `name` of `group` at `url`, every other setting at its default (active, not
    /// draining, no external URL, no rewriting, `health.stats`, no `max_queries`).
    pub fn new(name: impl Into<String>, group: impl Into<String>, url: impl Into<String>) -> Self {
        BackendConfig {
            name: name.into(),
            url: url.into(),
            group: group.into(),
            active: true,
            draining: false,
            external_url: None,
            rewrite_next_uri: false,
            stats: None,
            max_queries: None,
        }
    }

    /// A name, a group, a usable `http://` URL without a path, a well-formed external URL.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.name.trim().is_empty() {
            return Err(Invalid::new("name", "must not be empty"));
        }
        // it appears in API paths (`/api/v1/backends/{name}`) and in logs
        let odd =
            |c: char| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '%');
        if self.name.len() > 128 || self.name.chars().any(odd) {
            return Err(Invalid::new(
                "name",
                format!(
                    "'{}': at most 128 characters, without spaces or / ? # %",
                    self.name.escape_default()
                ),
            ));
        }
        check_http_url("url", &self.url)?;
        if let Some(ext) = &self.external_url {
            check_url_syntax("external_url", ext)?;
        }
        if self.group.trim().is_empty() {
            return Err(Invalid::new("group", "must not be empty"));
        }
        if self.max_queries == Some(0) {
            return Err(Invalid::new(
                "max_queries",
                "must be more than 0 (leave it out for no limit; deactivate a backend to give it nothing)",
            ));
        }
        Ok(())
    }
}

/// Every backend valid, and no name used twice.
pub(crate) fn validate_all(backends: &[BackendConfig]) -> Result<(), Invalid> {
    let mut names = std::collections::BTreeSet::new();
    for (i, b) in backends.iter().enumerate() {
        let item = format!("[{i}]");
        b.validate().map_err(|e| e.under(&item))?;
        if !names.insert(b.name.as_str()) {
            return Err(Invalid::new(
                format!("{item}.name"),
                format!("'{}' is used by two backends", b.name),
            ));
        }
    }
    Ok(())
}

fn check_url_syntax(field: &str, url: &str) -> Result<http::Uri, Invalid> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Invalid::new(field, format!("'{url}' is not a URL: {e}")))?;
    if uri.scheme().is_none() || uri.host().is_none() {
        return Err(Invalid::new(
            field,
            format!("'{url}' must be an absolute URL such as http://host:8080"),
        ));
    }
    check_port(field, url, uri.authority().map(|a| a.as_str()))?;
    Ok(uri)
}

fn check_http_url(field: &str, url: &str) -> Result<(), Invalid> {
    let uri = check_url_syntax(field, url)?;
    let wrong = |msg: String| Err(Invalid::new(field, msg));
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return wrong(format!("'{url}' must use http:// or https://")),
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return wrong(format!("'{url}' must not have a path"));
    }
    Ok(())
}

/// The port of `authority` (`user@host:port`), if it names one, is 1..=65535.
pub(crate) fn check_port(field: &str, url: &str, authority: Option<&str>) -> Result<(), Invalid> {
    let Some(authority) = authority else {
        return Ok(());
    };
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    // an IPv6 literal's colons are inside the brackets
    let after_host = host_port.rsplit(']').next().unwrap_or(host_port);
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if !port.is_empty() && !matches!(port.parse::<u16>(), Ok(1..)) {
            return Err(Invalid::new(
                field,
                format!("'{url}': port {port} is not in 1..65535"),
            ));
        }
    }
    Ok(())
}
