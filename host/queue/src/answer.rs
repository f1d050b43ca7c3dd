//! What a client polling a waiting query reads: Trino's `QueryResults` documents, QUEUED with a
//! `nextUri` while it waits, FAILED with an `error` when the wait ends without the query running.
use serde_json::{json, Value};

/// The URIs of a waiting query, under the gateway's external `base` (`http://host:port`).
pub struct Uris<'a> {
    /// `scheme://host[:port]` as the client reaches the gateway.
    pub base: &'a str,
    /// The issued id.
    pub id: &'a str,
    /// The entry's slug.
    pub slug: &'a str,
}

impl Uris<'_> {
    /// Where its client polls next.
    pub fn next(&self, token: u64) -> String {
        format!(
            "{}/v1/statement/queued/{}/{}/{token}",
            self.base, self.id, self.slug
        )
    }

    /// Its page in the web UI (the cluster's, once it runs).
    pub fn info(&self) -> String {
        format!("{}/ui/query.html?{}", self.base, self.id)
    }
}

/// Trino's statement stats with every field clients parse, for a query that has run nothing.
fn stats(state: &str, waited_ms: i64) -> Value {
    json!({
        "state": state, "queued": state == "QUEUED", "scheduled": false, "nodes": 0,
        "totalSplits": 0, "queuedSplits": 0, "runningSplits": 0, "completedSplits": 0,
        "cpuTimeMillis": 0, "wallTimeMillis": 0, "queuedTimeMillis": waited_ms,
        "elapsedTimeMillis": waited_ms, "processedRows": 0, "processedBytes": 0,
        "physicalInputBytes": 0, "peakMemoryBytes": 0, "spilledBytes": 0,
    })
}

/// A QUEUED answer: poll `next` next.
pub fn queued(uris: &Uris<'_>, token: u64, waited_ms: i64) -> Value {
    json!({
        "id": uris.id,
        "infoUri": uris.info(),
        "nextUri": uris.next(token),
        "stats": stats("QUEUED", waited_ms),
        "warnings": [],
    })
}

/// How a wait ended without the query running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client (or an operator) cancelled it.
    Cancelled,
    /// It waited longer than `queue.timeout_ms`.
    TimedOut,
    /// Its client stopped polling.
    Abandoned,
    /// Its submission to the cluster failed.
    Failed,
}

impl Ending {
    /// From a stored state.
    pub fn of_state(state: &str) -> Ending {
        match state {
            "cancelled" => Ending::Cancelled,
            "timed_out" => Ending::TimedOut,
            "abandoned" => Ending::Abandoned,
            _ => Ending::Failed,
        }
    }

    /// The stored state.
    pub fn state(self) -> &'static str {
        match self {
            Ending::Cancelled => "cancelled",
            Ending::TimedOut => "timed_out",
            Ending::Abandoned => "abandoned",
            Ending::Failed => "failed",
        }
    }

    /// Trino's error (code, name, type) for it.
    fn error(self) -> (u32, &'static str, &'static str) {
        match self {
            Ending::Cancelled => (3, "USER_CANCELED", "USER_ERROR"),
            Ending::TimedOut => (131_075, "EXCEEDED_TIME_LIMIT", "INSUFFICIENT_RESOURCES"),
            Ending::Abandoned => (65_541, "ABANDONED_QUERY", "USER_ERROR"),
            Ending::Failed => (65_536, "GENERIC_INTERNAL_ERROR", "INTERNAL_ERROR"),
        }
    }
}

/// A FAILED answer with Trino's error document: no `nextUri`, the client stops polling.
pub fn ended(uris: &Uris<'_>, ending: Ending, message: &str, waited_ms: i64) -> Value {
    let (code, name, kind) = ending.error();
    json!({
        "id": uris.id,
        "infoUri": uris.info(),
        "stats": stats("FAILED", waited_ms),
        "error": {
            "message": message, "errorCode": code, "errorName": name, "errorType": kind,
            "failureInfo": { "type": "io.sluice.QueueError", "message": message, "suppressed": [], "stack": [] },
        },
        "warnings": [],
    })
}

/// The answer to a `CALL system.runtime.kill_query` whose target was still waiting (and is now
/// cancelled): a finished CALL, as a cluster answers one.
pub fn kill_done(base: &str, id: &str) -> Value {
    json!({
        "id": id,
        "infoUri": format!("{base}/ui/query.html?{id}"),
        "stats": stats("FINISHED", 0),
        "warnings": [],
        "updateType": "CALL",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_and_failed_answers_are_trino_documents() {
        let uris = Uris {
            base: "http://gw:8080",
            id: "20261206_000000_00001_lqabcdef",
            slug: "y1",
        };
        let q = queued(&uris, 3, 1500);
        assert_eq!(
            q["nextUri"],
            "http://gw:8080/v1/statement/queued/20261206_000000_00001_lqabcdef/y1/3"
        );
        assert_eq!(q["stats"]["state"], "QUEUED");
        assert_eq!(q["stats"]["queuedTimeMillis"], 1500);
        let f = ended(&uris, Ending::TimedOut, "waited too long", 9);
        assert!(f.get("nextUri").is_none());
        assert_eq!(f["error"]["errorName"], "EXCEEDED_TIME_LIMIT");
        assert_eq!(f["stats"]["state"], "FAILED");
        assert_eq!(
            Ending::of_state(Ending::Abandoned.state()),
            Ending::Abandoned
        );
    }
}
