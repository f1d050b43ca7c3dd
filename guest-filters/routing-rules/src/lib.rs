//! Routing rules: pick the routing group from an ordered list of rules; the first rule whose every
//! condition holds wins (rules are tried by `priority`, highest first, then in file order). This
//! replaces Trino Gateway's MVEL rules file, which applies the *last* matching rule.
//!
//! ```yaml
//! config:
//!   default_group: adhoc            # optional: group when no rule matches (else: pass)
//!   rules:
//!     - name: airflow-special
//!       priority: 10
//!       when: { source: airflow, client_tags: [label=special] }
//!       group: etl-special
//!     - name: airflow
//!       when: { source: airflow }
//!       group: etl
//!     - name: big-scans
//!       when: { tables: [hive.sales.orders], query: "(?i)\\bgroup\\s+by\\b" }
//!       group: heavy
//!       queue_priority: -5          # optional: its priority should it wait in Sluice's queue
//! ```
//!
//! Conditions: `user`, `source` (exact), `user_regex`, `source_regex`, `client_tags` (all listed
//! tags present), `headers` (name → regex, names in lower case), `query` (regex on the SQL text),
//! `catalogs`, `schemas` (`catalog.schema`), `tables` (`catalog.schema.table`): at least one listed
//! value is used by the statement.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use sluice_filter_sdk::{export_filter, Ctx, Decision, InitInfo, QueryRequest};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    default_group: Option<String>,
    rules: Vec<RawRule>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    when: RawWhen,
    group: String,
    #[serde(default)]
    queue_priority: Option<i32>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    user: Option<String>,
    user_regex: Option<String>,
    source: Option<String>,
    source_regex: Option<String>,
    #[serde(default)]
    client_tags: Vec<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    query: Option<String>,
    #[serde(default)]
    catalogs: Vec<String>,
    #[serde(default)]
    schemas: Vec<String>,
    #[serde(default)]
    tables: Vec<String>,
}

struct Rule {
    group: String,
    queue_priority: Option<i32>,
    user: Option<String>,
    user_regex: Option<Regex>,
    source: Option<String>,
    source_regex: Option<Regex>,
    client_tags: Vec<String>,
    headers: Vec<(String, Regex)>,
    query: Option<Regex>,
    catalogs: Vec<String>,
    schemas: Vec<String>,
    tables: Vec<String>,
}

struct Rules {
    default_group: Option<String>,
    rules: Vec<Rule>,
}

static RULES: OnceLock<Rules> = OnceLock::new();

fn compile(rule: &str, field: &str, pattern: &str) -> Result<Regex, String> {
    // anchored: a pattern must match the whole value unless it says otherwise with .*
    let anchored = if field == "query" {
        pattern.to_string()
    } else {
        format!("^(?:{pattern})$")
    };
    Regex::new(&anchored).map_err(|e| format!("rule '{rule}': {field}: {e}"))
}

fn init(config: &str) -> Result<InitInfo, String> {
    let raw: RawConfig =
        serde_json::from_str(config).map_err(|e| format!("routing-rules config: {e}"))?;
    let mut ordered: Vec<(usize, RawRule)> = raw.rules.into_iter().enumerate().collect();
    ordered.sort_by(|(ia, a), (ib, b)| b.priority.cmp(&a.priority).then(ia.cmp(ib)));
    let mut rules = Vec::new();
    for (_, r) in ordered {
        let w = r.when;
        let name = r.name.as_str();
        let opt = |field: &str, p: &Option<String>| {
            p.as_deref().map(|p| compile(name, field, p)).transpose()
        };
        rules.push(Rule {
            user_regex: opt("user_regex", &w.user_regex)?,
            source_regex: opt("source_regex", &w.source_regex)?,
            query: opt("query", &w.query)?,
            headers: w
                .headers
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.to_ascii_lowercase(),
                        compile(name, &format!("headers.{k}"), v)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
            group: r.group,
            queue_priority: r.queue_priority,
            user: w.user,
            source: w.source,
            client_tags: w.client_tags,
            catalogs: w.catalogs,
            schemas: w.schemas,
            tables: w.tables,
        });
    }
    let wants_sql_objects = rules
        .iter()
        .any(|r| !r.catalogs.is_empty() || !r.schemas.is_empty() || !r.tables.is_empty());
    let _ = RULES.set(Rules {
        default_group: raw.default_group,
        rules,
    });
    Ok(InitInfo { wants_sql_objects })
}

fn any_of(wanted: &[String], used: &[String]) -> bool {
    wanted.is_empty()
        || wanted
            .iter()
            .any(|w| used.iter().any(|u| u.eq_ignore_ascii_case(w)))
}

impl Rule {
    fn matches(&self, req: &QueryRequest) -> bool {
        let user = req.user.as_deref().unwrap_or("");
        let source = req.source.as_deref().unwrap_or("");
        self.user.as_deref().is_none_or(|u| u == user)
            && self.user_regex.as_ref().is_none_or(|r| r.is_match(user))
            && self.source.as_deref().is_none_or(|s| s == source)
            && self
                .source_regex
                .as_ref()
                .is_none_or(|r| r.is_match(source))
            && self.client_tags.iter().all(|t| req.client_tags.contains(t))
            && self
                .headers
                .iter()
                .all(|(name, r)| req.headers.iter().any(|(k, v)| k == name && r.is_match(v)))
            && self
                .query
                .as_ref()
                .is_none_or(|r| r.is_match(&req.query_text))
            && any_of(&self.catalogs, &req.catalogs)
            && any_of(&self.schemas, &req.schemas)
            && any_of(&self.tables, &req.tables)
    }
}

fn route(req: &QueryRequest, ctx: &Ctx) -> Decision {
    let Some(rules) = RULES.get() else {
        return Decision::Pass;
    };
    match rules.rules.iter().find(|r| r.matches(req)) {
        Some(rule) => {
            if let Some(p) = rule.queue_priority {
                ctx.set_priority(p);
            }
            Decision::UseGroup(rule.group.clone())
        }
        None => match &rules.default_group {
            Some(g) => Decision::UseGroup(g.clone()),
            None => Decision::Pass,
        },
    }
}

export_filter!(route, init = init);
