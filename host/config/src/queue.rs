//! `queue:`: how queries wait in Sluice when every backend of their group is at its
//! `max_queries`, in what order, and the quotas that keep one user or group from taking all.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

/// The gateway's queue. It only holds queries when some backend has `max_queries` (or a group
/// has a limit here); without limits every query goes straight through.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// How long a query may wait before it fails with a Trino-style error (default 10 min).
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// How long a poll of a waiting query is held before it is answered QUEUED again
    /// (default 1000 ms; Trino holds its own queued polls about as long).
    #[serde(default = "poll_wait_ms")]
    pub poll_wait_ms: u64,
    /// A waiting query whose client has not polled for this long is dropped (default 60 s): it
    /// no longer holds up the queries behind it.
    #[serde(default = "abandon_after_ms")]
    pub abandon_after_ms: u64,
    /// How often each instance re-checks for room while holding a poll (default 200 ms; room
    /// freed on the same instance wakes its polls at once).
    #[serde(default = "recheck_ms")]
    pub recheck_ms: u64,
    /// Queries waiting at most, fleet-wide (default 10000); beyond, new ones fail at once.
    #[serde(default = "max_queued")]
    pub max_queued: u64,
    /// A slot whose query the cluster no longer reports (its end was not seen: the client went
    /// away) is freed this long after it was taken, once a health check shows the cluster runs
    /// fewer queries than Sluice holds slots for (default 5000 ms).
    #[serde(default = "reconcile_grace_ms")]
    pub reconcile_grace_ms: u64,
    /// Priority of a query no rule and no filter sets (default 0). Higher goes first; equal
    /// priorities are first come, first served.
    #[serde(default)]
    pub default_priority: i32,
    /// Priority rules, tried in order; the first that matches sets the priority (a routing
    /// filter's `set-priority` overrides it).
    #[serde(default)]
    pub priorities: Vec<PriorityRule>,
    /// Limits per routing group.
    #[serde(default)]
    pub groups: BTreeMap<String, Quota>,
    /// Limits per user; the entry `"*"` applies to every user without an entry of their own.
    #[serde(default)]
    pub users: BTreeMap<String, Quota>,
}

/// Limits on running (admitted, not yet finished) and waiting queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Running at most (none: no limit); for a group, on top of its backends' `max_queries`.
    #[serde(default)]
    pub max_running: Option<u32>,
    /// Waiting at most (none: only `queue.max_queued`); beyond, new ones fail at once.
    #[serde(default)]
    pub max_queued: Option<u32>,
}

/// One priority rule: every field given must match (a value ending in `*` matches by prefix).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityRule {
    /// The query's user.
    #[serde(default)]
    pub user: Option<String>,
    /// `X-Trino-Source`.
    #[serde(default)]
    pub source: Option<String>,
    /// The routing group the query ended up in.
    #[serde(default)]
    pub group: Option<String>,
    /// One of `X-Trino-Client-Tags`.
    #[serde(default)]
    pub client_tag: Option<String>,
    /// The priority it gets.
    pub priority: i32,
}

fn timeout_ms() -> u64 {
    600_000
}
fn poll_wait_ms() -> u64 {
    1000
}
fn abandon_after_ms() -> u64 {
    60_000
}
fn recheck_ms() -> u64 {
    200
}
fn max_queued() -> u64 {
    10_000
}
fn reconcile_grace_ms() -> u64 {
    5000
}

impl Default for QueueConfig {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

/// Whether `pattern` (a value, or a prefix ending in `*`) matches `value`.
fn matches(pattern: &Option<String>, value: Option<&str>) -> bool {
    match pattern.as_deref() {
        None => true,
        Some(p) => match (p.strip_suffix('*'), value) {
            (_, None) => false,
            (Some(prefix), Some(v)) => v.starts_with(prefix),
            (None, Some(v)) => v == p,
        },
    }
}

impl QueueConfig {
    /// Positive times; a poll held shorter than the abandon time (or every client would be
    /// dropped between two polls).
    pub fn validate(&self) -> Result<(), Invalid> {
        for (field, v) in [
            ("timeout_ms", self.timeout_ms),
            ("poll_wait_ms", self.poll_wait_ms),
            ("recheck_ms", self.recheck_ms),
            ("abandon_after_ms", self.abandon_after_ms),
        ] {
            if v == 0 {
                return Err(Invalid::new(field, "must be more than 0"));
            }
        }
        if self.abandon_after_ms < self.poll_wait_ms * 3 {
            return Err(Invalid::new(
                "abandon_after_ms",
                format!(
                    "{} is less than 3 × poll_wait_ms ({}): a client polling normally would be taken for gone",
                    self.abandon_after_ms, self.poll_wait_ms
                ),
            ));
        }
        for (i, rule) in self.priorities.iter().enumerate() {
            let given = [&rule.user, &rule.source, &rule.group, &rule.client_tag];
            if given.iter().all(|f| f.is_none()) {
                return Err(Invalid::new(
                    format!("priorities[{i}]"),
                    "names nothing to match (user, source, group or client_tag)",
                ));
            }
        }
        Ok(())
    }

    /// The priority of a query from `user` / `source` with `tags`, routed to `group`.
    pub fn priority_of(
        &self,
        user: Option<&str>,
        source: Option<&str>,
        tags: &[String],
        group: &str,
    ) -> i32 {
        self.priorities
            .iter()
            .find(|r| {
                matches(&r.user, user)
                    && matches(&r.source, source)
                    && matches(&r.group, Some(group))
                    && (r.client_tag.is_none()
                        || tags.iter().any(|t| matches(&r.client_tag, Some(t))))
            })
            .map_or(self.default_priority, |r| r.priority)
    }

    /// The quota of `user`: their own entry, else `"*"`.
    pub fn user_quota(&self, user: &str) -> Quota {
        self.users
            .get(user)
            .or_else(|| self.users.get("*"))
            .copied()
            .unwrap_or_default()
    }

    /// The quota of `group`.
    pub fn group_quota(&self, group: &str) -> Quota {
        self.groups.get(group).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_sets_the_priority() {
        let q: QueueConfig = serde_yaml::from_str(
            "{ default_priority: 1, priorities: [ { user: ops, priority: 10 }, { source: 'airflow*', group: etl, priority: -5 }, { client_tag: urgent, priority: 7 } ] }",
        )
        .unwrap();
        q.validate().unwrap();
        assert_eq!(q.priority_of(Some("ops"), None, &[], "adhoc"), 10);
        assert_eq!(q.priority_of(Some("x"), Some("airflow-2"), &[], "etl"), -5);
        assert_eq!(q.priority_of(Some("x"), Some("airflow-2"), &[], "adhoc"), 1);
        assert_eq!(
            q.priority_of(None, None, &["a".into(), "urgent".into()], "g"),
            7
        );
        assert_eq!(q.priority_of(None, None, &[], "g"), 1);
    }

    #[test]
    fn quotas_fall_back_to_star_and_bad_values_are_named() {
        let q: QueueConfig =
            serde_yaml::from_str("{ users: { '*': { max_running: 2 }, bob: { max_queued: 1 } } }")
                .unwrap();
        assert_eq!(q.user_quota("alice").max_running, Some(2));
        assert_eq!(q.user_quota("bob").max_running, None);
        let bad: QueueConfig = serde_yaml::from_str("{ priorities: [ { priority: 3 } ] }").unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("priorities[0]"));
        let bad: QueueConfig =
            serde_yaml::from_str("{ poll_wait_ms: 1000, abandon_after_ms: 2000 }").unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("abandon_after_ms"));
    }
}
