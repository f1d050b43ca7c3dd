//! Admission: a new query starts on a backend with room or waits; a waiting query's poll is held
//! until room frees up, then admits it.
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_cluster::Backend;
use sluice_config::QueueConfig;
use sluice_store::now_ms;
use sluice_store::queue::{Admission, AdmitAsk, Entry, NewEntry, QueueFull, WaitLimits};

use crate::{ids, metrics, Ending, Poll, Queue, QueueError, Start, Waiting};

impl Queue {
    /// A new query routed to `preferred` in `group`: a slot there or on another backend of the
    /// group with room, unless queries wait ahead of it or a quota stops it.
    pub async fn start(
        &self,
        preferred: &Backend,
        group: &str,
        user: &str,
        priority: i32,
    ) -> Result<Start, QueueError> {
        let config = self.config.load_full();
        let rooms = self.rooms(group, Some(preferred.name()));
        let slot = ids::slot();
        let user_max = |u: &str| config.user_quota(u).max_running;
        let (now_ms, live_since_ms) = Self::clock(&config);
        let ask = AdmitAsk {
            slot_id: &slot,
            group,
            user,
            priority: i64::from(priority),
            seq: None,
            rooms: &rooms,
            group_max: config.group_quota(group).max_running,
            user_max: &user_max,
            live_since_ms,
            now_ms,
        };
        let admission = self.run(|s| async move { s.admit(&ask).await }).await?;
        Ok(match admission {
            Admission::Admitted(name) => match self.cluster.get(&name) {
                Some(backend) => {
                    self.admitted(group, "direct", None);
                    Start::Go { backend, slot }
                }
                None => {
                    self.release_slot(&slot).await;
                    Start::Wait
                }
            },
            _ => Start::Wait,
        })
    }

    fn admitted(&self, group: &str, path: &'static str, waited: Option<Duration>) {
        let group = group.to_string();
        if let Some(w) = waited {
            self.metrics
                .waited
                .get_or_create(&metrics::GroupLabel {
                    group: group.clone(),
                })
                .observe(w.as_secs_f64());
        }
        self.metrics
            .admissions
            .get_or_create(&metrics::AdmissionLabels { group, path })
            .inc();
    }

    /// Make a query wait: stored with its statement and `headers` (no credentials); returns its
    /// issued id and slug.
    pub async fn enqueue(&self, w: Waiting<'_>) -> Result<(String, String), QueueError> {
        let config = self.config.load_full();
        let (id, slug) = (ids::issue(), ids::slug());
        let now = now_ms();
        let user = w.user.unwrap_or("");
        let entry = NewEntry {
            id: &id,
            slug: &slug,
            priority: i64::from(w.priority),
            group: w.group,
            user,
            source: w.source,
            query_text: w.query_text,
            statement: w.statement,
            headers: w.headers,
            now_ms: now,
            deadline_ms: now.saturating_add(config.timeout_ms as i64),
        };
        let limits = WaitLimits {
            max_queued: config.max_queued,
            group_max_queued: config.group_quota(w.group).max_queued,
            user_max_queued: config.user_quota(user).max_queued,
        };
        let result = self
            .run(|s| async move { s.enqueue(&entry, limits).await })
            .await?;
        match result {
            Ok(_) => Ok((id, slug)),
            Err(full) => {
                self.metrics.ended(w.group, "refused");
                Err(QueueError::Full(match full {
                    QueueFull::Total(n) => format!("the gateway's queue is full ({n} queries wait: queue.max_queued)"),
                    QueueFull::Group(n) => format!("routing group '{}' has {n} queries waiting, its limit (queue.groups.{}.max_queued)", w.group, w.group),
                    QueueFull::User(n) => format!("user '{user}' has {n} queries waiting, their limit (queue.users)"),
                }))
            }
        }
    }

    /// A poll of waiting query `id` with `slug`: tries to admit it, holding the poll up to
    /// `queue.poll_wait_ms` while there is no room.
    pub async fn poll(&self, id: &str, slug: &str) -> Result<Poll, QueueError> {
        let config = self.config.load_full();
        let held_until = Instant::now() + Duration::from_millis(config.poll_wait_ms);
        let recheck = Duration::from_millis(config.recheck_ms);
        let mut entry = match self.entry(id, true).await? {
            Some(e) if e.slug == slug => e,
            _ => return Ok(Poll::Unknown),
        };
        loop {
            match entry.state.as_str() {
                "queued" if now_ms() >= entry.deadline_ms => {
                    let message = format!(
                        "the query waited {} s in the gateway's queue for room on a cluster of group '{}' (queue.timeout_ms)",
                        (now_ms() - entry.enqueued_ms) / 1000,
                        entry.routing_group
                    );
                    let (eid, m) = (entry.id.clone(), message.clone());
                    self.run(|s| async move { s.end_entry(&eid, "timed_out", &m).await })
                        .await?;
                    self.metrics.ended(&entry.routing_group, "timed_out");
                    entry.message = Some(message);
                    return Ok(Poll::Ended(entry, Ending::TimedOut));
                }
                "queued" => {
                    if let Some(backend) = self.try_admit(&entry, &config).await? {
                        return Ok(Poll::Admitted(entry, backend));
                    }
                }
                "admitted" if entry.query_id.is_some() => return Ok(Poll::Running(entry)),
                // another instance is submitting it: wait for it like for room
                "admitted" => {}
                other => {
                    let ending = Ending::of_state(other);
                    return Ok(Poll::Ended(entry, ending));
                }
            }
            let now = Instant::now();
            if now >= held_until {
                return Ok(Poll::Waiting(entry));
            }
            let pause = recheck.min(held_until - now);
            let _ = tokio::time::timeout(pause, self.room.notified()).await;
            entry = match self.entry(id, false).await? {
                Some(e) => e,
                None => return Ok(Poll::Unknown),
            };
        }
    }

    /// One attempt to admit waiting `entry`.
    async fn try_admit(
        &self,
        entry: &Entry,
        config: &QueueConfig,
    ) -> Result<Option<Arc<Backend>>, QueueError> {
        let rooms = self.rooms(&entry.routing_group, None);
        let user_max = |u: &str| config.user_quota(u).max_running;
        let (now_ms, live_since_ms) = Self::clock(config);
        let ask = AdmitAsk {
            slot_id: &entry.id,
            group: &entry.routing_group,
            user: &entry.user_name,
            priority: entry.priority,
            seq: Some(entry.seq),
            rooms: &rooms,
            group_max: config.group_quota(&entry.routing_group).max_running,
            user_max: &user_max,
            live_since_ms,
            now_ms,
        };
        let admission = self.run(|s| async move { s.admit(&ask).await }).await?;
        let Admission::Admitted(name) = admission else {
            return Ok(None);
        };
        let waited =
            Duration::from_millis((sluice_store::now_ms() - entry.enqueued_ms).max(0) as u64);
        match self.cluster.get(&name) {
            Some(b) => {
                self.admitted(&entry.routing_group, "queued", Some(waited));
                Ok(Some(b))
            }
            None => {
                self.unadmit(&entry.id, true, "").await;
                Ok(None)
            }
        }
    }
}
