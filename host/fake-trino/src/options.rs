//! How a fake coordinator behaves: [`FakeOptions`] for the whole coordinator, and the `fake:`
//! options a query's own SQL may carry ([`SqlOptions`]).

/// How a fake coordinator behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Cluster name, returned in every row so tests can see who answered.
    pub name: String,
    /// Result pages per query.
    pub pages: u32,
    /// Rows per page.
    pub rows_per_page: u32,
    /// Polls a query stays QUEUED.
    pub queued_polls: u32,
    /// Delay before answering each statement request.
    pub delay_ms: u64,
    /// Build `nextUri` from `X-Forwarded-*` (true) or from its own address (false).
    pub honor_forwarded: bool,
    /// Report `starting: true` on `/v1/info`.
    pub starting: bool,
    /// Keep at most this many queries (0: all), forgetting the oldest never polled first, so a
    /// long benchmark does not grow the table (and stall on its rehashes) without bound.
    pub max_queries: usize,
    /// Answer 401 to any request without exactly this `Authorization` header (a cluster with
    /// authentication), when set.
    pub require_authorization: Option<String>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            name: "fake".into(),
            pages: 3,
            rows_per_page: 2,
            queued_polls: 1,
            delay_ms: 0,
            honor_forwarded: true,
            starting: false,
            max_queries: 0,
            require_authorization: None,
        }
    }
}

/// What a query's SQL text may ask of the fake coordinator, anywhere in the text (a comment
/// does): `SELECT 1 -- fake:pages=10 fake:delay_ms=200`. `sluice fake-trino --help` prints it.
pub const SQL_OPTIONS_HELP: &str = "\
Per-query options, written anywhere in a query's SQL text (a comment will do):
  fake:pages=N      answer N result pages (at least 1) instead of --pages
  fake:delay_ms=N   wait N ms before each answer to this query's polls instead of --delay-ms
  fake:fail         fail the query at once (FAILED, errorName GENERIC_USER_ERROR)
Statements it understands besides: CALL system.runtime.kill_query('ID') kills a query it owns
(and fails for one it does not); PREPARE NAME FROM ... answers X-Trino-Added-Prepare.
Clients asking for the spooling protocol (X-Trino-Query-Data-Encoding: json) get the first page
inline and later ones as spooled segments. GET /fake/stats shows its counters.";

/// The `fake:` options of one query's SQL, over the coordinator's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlOptions {
    /// Result pages (at least 1).
    pub pages: u32,
    /// Delay before each answer to a poll, in ms.
    pub delay_ms: u64,
    /// Fail the query at once.
    pub fail: bool,
}

impl SqlOptions {
    /// The options `sql` sets, the rest from `defaults`.
    pub fn parse(sql: &str, defaults: &FakeOptions) -> SqlOptions {
        let number = |key: &str| {
            sql.find(key)
                .map(|i| &sql[i + key.len()..])
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        SqlOptions {
            pages: number("fake:pages=")
                .map(|p| u32::try_from(p).unwrap_or(u32::MAX))
                .unwrap_or(defaults.pages)
                .max(1),
            delay_ms: number("fake:delay_ms=").unwrap_or(defaults.delay_ms),
            fail: sql.contains("fake:fail"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_in_the_sql_override_the_defaults() {
        let d = FakeOptions::default();
        let o = SqlOptions::parse("SELECT 1 -- fake:pages=7 fake:delay_ms=250", &d);
        assert_eq!((o.pages, o.delay_ms, o.fail), (7, 250, false));
        let o = SqlOptions::parse("SELECT 1", &d);
        assert_eq!((o.pages, o.delay_ms, o.fail), (d.pages, d.delay_ms, false));
        assert!(SqlOptions::parse("SELECT 'fake:fail'", &d).fail);
        assert_eq!(SqlOptions::parse("-- fake:pages=0", &d).pages, 1);
        assert_eq!(SqlOptions::parse("-- fake:pages=x", &d).pages, d.pages);
    }
}
