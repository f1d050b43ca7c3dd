//! Reading a statement body within limits: at most `proxy.max_statement_bytes`, no pause longer
//! than `proxy.body_timeout_ms` between two chunks (408), and a budget of statement bytes held in
//! memory across all connections (`proxy.statement_memory_bytes`, 503 beyond it): twenty stalled
//! 15 MiB bodies cannot hold 300 MiB of the gateway.
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::GatewayError;

/// The budget is counted in KiB (a semaphore holds at most `u32::MAX` permits).
const UNIT: usize = 1024;

/// The statement bytes every connection holds together.
#[derive(Clone)]
pub struct StatementBudget {
    units: Arc<Semaphore>,
    max_statement: usize,
    idle: Duration,
}

/// A statement read, and its share of the budget (released when dropped).
pub struct Statement {
    /// The bytes.
    pub bytes: Bytes,
    _held: Vec<OwnedSemaphorePermit>,
}

impl StatementBudget {
    /// `total` bytes for all statements, `max_statement` for one, `idle` between chunks.
    pub fn new(total: usize, max_statement: usize, idle: Duration) -> Self {
        let units = (total / UNIT).clamp(1, u32::MAX as usize);
        Self {
            units: Arc::new(Semaphore::new(units)),
            max_statement,
            idle,
        }
    }

    /// Read `body` within the limits.
    pub async fn read(&self, mut body: Incoming) -> Result<Statement, GatewayError> {
        let mut buf = BytesMut::new();
        let mut held = Vec::new();
        let mut units_held = 0usize;
        loop {
            let frame = match tokio::time::timeout(self.idle, body.frame()).await {
                Err(_) => {
                    return Err(GatewayError::Rejected {
                        status: StatusCode::REQUEST_TIMEOUT,
                        message: format!(
                            "the statement body stalled for {} ms (proxy.body_timeout_ms)",
                            self.idle.as_millis()
                        ),
                    })
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(GatewayError::BadRequest(format!(
                        "could not read the statement: {e}"
                    )))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > self.max_statement {
                return Err(GatewayError::BadRequest(format!(
                    "statement is larger than proxy.max_statement_bytes ({} bytes)",
                    self.max_statement
                )));
            }
            let need = (buf.len() + data.len()).div_ceil(UNIT) - units_held;
            if need > 0 {
                match self.units.clone().try_acquire_many_owned(need as u32) {
                    Ok(p) => {
                        held.push(p);
                        units_held += need;
                    }
                    Err(_) => {
                        return Err(GatewayError::Rejected {
                            status: StatusCode::SERVICE_UNAVAILABLE,
                            message: "the gateway holds too many statement bytes now (proxy.statement_memory_bytes); retry".into(),
                        })
                    }
                }
            }
            buf.extend_from_slice(&data);
        }
        Ok(Statement {
            bytes: buf.freeze(),
            _held: held,
        })
    }
}
