//! The fake coordinator's queries: creation (with the `fake:` options in the SQL) and the
//! protocol's state machine, page by page.
use std::sync::atomic::Ordering;

use rand::RngExt;

use http::{Response, StatusCode};
use serde_json::{json, Value};
use sluice_http::Body;

use sluice_proxy::kill_query;

use crate::options::SqlOptions;
use crate::respond::{failed, json_resp, stats, text};
use crate::state::{lock, Fake, Query, State};

impl Fake {
    /// A new query; `session` is the client's (catalog, schema), which `CALL kill_query`
    /// resolves against as Trino does.
    pub(crate) fn create(
        &self,
        base: &str,
        sql: String,
        user: String,
        session: (Option<&str>, Option<&str>),
        spooled: bool,
    ) -> Response<Body> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("20261124_000000_{seq:05}_{}", self.suffix);
        let slug = format!("y{:08x}", rand::rng().random::<u32>());
        self.counters
            .queries_created
            .fetch_add(1, Ordering::Relaxed);

        if let Some(target) = kill_query::target_query_id(sql.as_bytes(), session.0, session.1) {
            let owned = self.with_query(&target, |q| {
                if q.state.active() {
                    self.set_state(q, State::Failed);
                }
            });
            if owned.is_none() {
                self.counters
                    .unknown_query_requests
                    .fetch_add(1, Ordering::Relaxed);
                return json_resp(
                    StatusCode::OK,
                    failed(
                        &id,
                        base,
                        "NOT_FOUND",
                        &format!("Target query not found: {target}"),
                    ),
                );
            }
            self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
            return json_resp(
                StatusCode::OK,
                json!({"id": id, "infoUri": format!("{base}/ui/query.html?{id}"), "stats": stats("FINISHED"),
                       "warnings": [], "updateType": "CALL"}),
            );
        }
        let options = SqlOptions::parse(&sql, &self.opts);
        if options.fail {
            return json_resp(
                StatusCode::OK,
                failed(&id, base, "GENERIC_USER_ERROR", "fake:fail requested"),
            );
        }
        let (pages, delay_ms) = (options.pages, options.delay_ms);
        let state = if self.opts.queued_polls > 0 {
            State::Queued
        } else {
            State::Running
        };
        let next = if state == State::Queued {
            format!("{base}/v1/statement/queued/{id}/{slug}/1")
        } else {
            format!("{base}/v1/statement/executing/{id}/{slug}/0")
        };
        let sql_text = sql.clone();
        let mut queries = lock(&self.queries);
        self.now_active(true);
        queries.insert(
            id.clone(),
            Query {
                slug,
                sql,
                user,
                state,
                pages,
                delay_ms,
                polled: false,
                spooled,
            },
        );
        if self.opts.max_queries > 0 {
            let mut created = lock(&self.created);
            created.push_back(id.clone());
            let mut tries = created.len();
            while queries.len() > self.opts.max_queries && tries > 0 {
                tries -= 1;
                let Some(oldest) = created.pop_front() else {
                    break;
                };
                if queries.get(&oldest).is_some_and(|q| q.polled) {
                    created.push_back(oldest);
                } else if let Some(q) = queries.remove(&oldest) {
                    if q.state.active() {
                        self.now_active(false);
                    }
                }
            }
        }
        drop(queries);
        let mut resp = json_resp(
            StatusCode::OK,
            json!({"id": id, "infoUri": format!("{base}/ui/query.html?{id}"), "nextUri": next,
                   "stats": stats(state.as_str()), "warnings": []}),
        );
        // `PREPARE name FROM statement`: the client keeps it and sends it back in
        // X-Trino-Prepared-Statement, as with Trino
        if let Some(added) = added_prepare(&sql_text) {
            if let Ok(v) = http::HeaderValue::from_str(&added) {
                resp.headers_mut().insert("x-trino-added-prepare", v);
            }
        }
        resp
    }

    pub(crate) fn advance(&self, base: &str, id: &str, queued: bool, token: u32) -> Response<Body> {
        let mut queries = lock(&self.queries);
        let Some(q) = queries.get_mut(id) else {
            drop(queries);
            return self.unknown(id);
        };
        q.polled = true;
        let info_uri = format!("{base}/ui/query.html?{id}");
        if matches!(q.state, State::Canceled | State::Failed) {
            return json_resp(
                StatusCode::OK,
                failed(id, base, "USER_CANCELED", "Query was canceled"),
            );
        }
        if queued {
            let next = if token < self.opts.queued_polls {
                format!("{base}/v1/statement/queued/{id}/{}/{}", q.slug, token + 1)
            } else {
                let slug = q.slug.clone();
                self.set_state(q, State::Running);
                format!("{base}/v1/statement/executing/{id}/{slug}/0")
            };
            return json_resp(
                StatusCode::OK,
                json!({"id": id, "infoUri": info_uri, "nextUri": next, "stats": stats(q.state.as_str()), "warnings": []}),
            );
        }
        if token >= q.pages {
            return text(StatusCode::GONE, "token expired");
        }
        let last = token + 1 == q.pages;
        self.set_state(
            q,
            if last {
                State::Finished
            } else {
                State::Running
            },
        );
        let rows: Vec<Value> = (0..self.opts.rows_per_page)
            .map(|r| json!([(token * self.opts.rows_per_page + r) as i64, self.opts.name]))
            .collect();
        let mut page = json!({
            "id": id,
            "infoUri": info_uri,
            "partialCancelUri": format!("{base}/v1/statement/executing/partialCancel/{id}/0/{}/{token}", q.slug),
            "columns": [
                {"name": "n", "type": "bigint", "typeSignature": {"rawType": "bigint", "arguments": []}},
                {"name": "cluster", "type": "varchar", "typeSignature": {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]}}
            ],
            "data": rows,
            "stats": stats(q.state.as_str()),
            "warnings": [],
        });
        if q.spooled {
            page["data"] = self.segments_of(base, token, rows);
        }
        if !last {
            page["nextUri"] = json!(format!(
                "{base}/v1/statement/executing/{id}/{}/{}",
                q.slug,
                token + 1
            ));
        }
        json_resp(StatusCode::OK, page)
    }
}
impl Fake {
    /// Move `q` to `to`, counting queries queued or running (a query whose last page is fetched
    /// again runs again, as it did).
    pub(crate) fn set_state(&self, q: &mut Query, to: State) {
        if matches!(q.state, State::Canceled | State::Failed) && to != q.state {
            // a cancelled or killed query stays so
            if to.active() || to == State::Finished {
                return;
            }
        }
        match (q.state.active(), to.active()) {
            (false, true) => self.now_active(true),
            (true, false) => self.now_active(false),
            _ => {}
        }
        q.state = to;
    }

    /// One more (or one fewer) query queued or running.
    pub(crate) fn now_active(&self, more: bool) {
        let c = &self.counters;
        if more {
            let n = c.active.fetch_add(1, Ordering::SeqCst) + 1;
            c.peak_active.fetch_max(n, Ordering::SeqCst);
        } else {
            c.active.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The spooling protocol's `data` for one page of `rows`: the first page inline, later
    /// ones as a spooled segment under an opaque token that names neither query nor cluster.
    fn segments_of(&self, base: &str, token: u32, rows: Vec<Value>) -> Value {
        use base64::Engine;
        let bytes = serde_json::to_vec(&rows).unwrap_or_default();
        let metadata = json!({"rowOffset": token * self.opts.rows_per_page, "rowsCount": rows.len(),
                              "segmentSize": bytes.len(), "uncompressedSize": bytes.len()});
        let segment = if token == 0 {
            let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
            json!({"type": "inline", "data": data, "metadata": metadata})
        } else {
            let handle = format!("seg{:016x}", rand::rng().random::<u64>());
            lock(&self.segments).insert(handle.clone(), bytes);
            json!({"type": "spooled", "uri": format!("{base}/v1/spooled/download/{handle}"),
                   "ackUri": format!("{base}/v1/spooled/ack/{handle}"), "metadata": metadata,
                   "headers": {}})
        };
        json!({"encoding": "json", "segments": [segment]})
    }

    /// `GET /v1/spooled/download/{token}` (or `ack`): the segment's bytes, or 404 for a
    /// token this coordinator never produced.
    pub(crate) fn segment(&self, token: &str, ack: bool) -> Response<Body> {
        let mut segments = lock(&self.segments);
        let found = match ack {
            true => segments.remove(token),
            false => segments.get(token).cloned(),
        };
        drop(segments);
        match found {
            Some(bytes) if !ack => {
                self.counters
                    .segments_downloaded
                    .fetch_add(1, Ordering::Relaxed);
                let mut resp = Response::new(sluice_http::full_body(bytes));
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/octet-stream"),
                );
                resp
            }
            Some(_) => Response::new(sluice_http::empty_body()),
            None => {
                self.counters
                    .unknown_segment_requests
                    .fetch_add(1, Ordering::Relaxed);
                let mut resp =
                    Response::new(sluice_http::full_body(format!("segment {token} not found")));
                *resp.status_mut() = StatusCode::NOT_FOUND;
                resp
            }
        }
    }
}

/// `name=url-encoded statement` for a `PREPARE name FROM statement`.
fn added_prepare(sql: &str) -> Option<String> {
    let rest = sql.trim_start();
    let (word, rest) = rest.split_once(char::is_whitespace)?;
    if !word.eq_ignore_ascii_case("prepare") {
        return None;
    }
    let (name, rest) = rest.trim_start().split_once(char::is_whitespace)?;
    let (from, statement) = rest.trim_start().split_once(char::is_whitespace)?;
    if !from.eq_ignore_ascii_case("from") {
        return None;
    }
    let encoded: String = form_urlencoded::byte_serialize(statement.trim().as_bytes()).collect();
    Some(format!("{name}={encoded}"))
}
