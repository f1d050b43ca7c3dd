//! The query history API: `GET /api/v1/queries` (newest first; `user`, `source`, `backend`,
//! `group`, `since` and `until` in milliseconds since the epoch, `q` for text in the statement,
//! `limit` up to 1000, `cursor` from the previous page) and `GET /api/v1/queries/{id}`.
use http::{Response, StatusCode};
use sluice_http::Body;
use sluice_store::{Cursor, HistoryFilter, HistoryRow};

use crate::api::{QueryPage, QueryRecord};
use crate::{error, reply, Admin};

/// Rows per page when `limit` is not given.
const DEFAULT_PAGE: u32 = 100;

impl Admin {
    /// `GET /api/v1/queries?…`.
    pub(crate) async fn queries(&self, query: Option<&str>) -> Response<Body> {
        let filter = match parse_filter(query) {
            Ok(f) => f,
            Err(resp) => return *resp,
        };
        let store = match self.store() {
            Ok(s) => s,
            Err(resp) => return *resp,
        };
        match store.history(&filter).await {
            Ok((rows, next)) => reply(
                StatusCode::OK,
                &QueryPage {
                    queries: rows.into_iter().map(|r| self.record(r)).collect(),
                    next_cursor: next.map(|c| c.encode()),
                },
            ),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }

    /// `GET /api/v1/queries/{id}`.
    pub(crate) async fn query(&self, id: &str) -> Response<Body> {
        let store = match self.store() {
            Ok(s) => s,
            Err(resp) => return *resp,
        };
        match store.history_entry(id).await {
            Ok(Some(row)) => reply(StatusCode::OK, &self.record(row)),
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                format!("query {id} is not in the history"),
            ),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }

    fn record(&self, r: HistoryRow) -> QueryRecord {
        let base = r.external_url.clone().or_else(|| {
            self.cluster.get(&r.backend).map(|b| {
                b.config
                    .external_url
                    .clone()
                    .unwrap_or_else(|| b.config.url.clone())
            })
        });
        QueryRecord {
            ui_url: base
                .map(|b| format!("{}/ui/query.html?{}", b.trim_end_matches('/'), r.query_id)),
            query: r,
        }
    }
}

/// The filter of a `GET /api/v1/queries` query string; a bad parameter is a 400 naming it.
fn parse_filter(query: Option<&str>) -> Result<HistoryFilter, Box<Response<Body>>> {
    let bad = |field: &str, why: &str| {
        Box::new(error(StatusCode::BAD_REQUEST, format!("{field}: {why}")))
    };
    let mut f = HistoryFilter {
        limit: DEFAULT_PAGE,
        ..Default::default()
    };
    let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes());
    for (key, value) in pairs {
        let value = value.into_owned();
        let ms = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| bad(&key, "milliseconds since the epoch expected"))
        };
        match key.as_ref() {
            "user" => f.user = Some(value),
            "source" => f.source = Some(value),
            "backend" => f.backend = Some(value),
            "group" => f.group = Some(value),
            "q" => f.text = Some(value),
            "since" => f.since_ms = Some(ms(&value)?),
            "until" => f.until_ms = Some(ms(&value)?),
            "limit" => {
                f.limit = match value.parse::<u32>() {
                    Ok(n @ 1..=sluice_store::history::MAX_PAGE) => n,
                    _ => return Err(bad("limit", "a number from 1 to 1000 expected")),
                }
            }
            "cursor" => {
                f.after = Some(
                    Cursor::decode(&value)
                        .ok_or_else(|| bad("cursor", "not a cursor this API handed out"))?,
                )
            }
            other => return Err(bad(
                other,
                "unknown parameter (user, source, backend, group, since, until, q, limit, cursor)",
            )),
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_a_filter_and_bad_ones_are_refused() {
        let f = parse_filter(Some("user=ann&group=etl&since=5&q=orders&limit=7")).unwrap();
        assert_eq!(f.user.as_deref(), Some("ann"));
        assert_eq!(f.group.as_deref(), Some("etl"));
        assert_eq!((f.since_ms, f.limit), (Some(5), 7));
        assert_eq!(f.text.as_deref(), Some("orders"));
        assert_eq!(parse_filter(None).unwrap().limit, DEFAULT_PAGE);
        for bad in [
            "limit=0",
            "limit=5000",
            "since=yesterday",
            "cursor=x",
            "colour=red",
        ] {
            let resp = parse_filter(Some(bad)).expect_err(bad);
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
