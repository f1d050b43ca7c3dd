//! Upper bounds on every number, found by the field's name, so that no value overflows where it
//! becomes a duration, a deadline or a size: `*_ms` at most a week, `*_seconds` ten years,
//! `*_days` a century, sizes and counts what a machine can hold. A bound names the field.
use serde_yaml::Value;

use crate::invalid::Invalid;

const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;
const TEN_YEARS_S: u64 = 10 * 365 * 24 * 3600;

/// The largest value a field of this name may take, if it is bounded.
fn bound(field: &str) -> Option<u64> {
    Some(match field {
        f if f.ends_with("_ms") => WEEK_MS,
        f if f.ends_with("_seconds") => TEN_YEARS_S,
        f if f.ends_with("_days") => 36_500,
        f if f.ends_with("_bytes") => 16 << 30,
        f if f.ends_with("_mb") => 1 << 20,
        "capacity" | "queue_capacity" => 1_000_000_000,
        "pool_size" | "batch_size" | "pool_max_idle_per_host" => 100_000,
        "max_connections" => 1_000_000,
        "workers" => 1024,
        _ => return None,
    })
}

/// Every bounded number in `value` (a configuration, serialised) within its bound; the error
/// names the field by its dotted path.
pub(crate) fn check(value: &Value, path: &str) -> Result<(), Invalid> {
    match value {
        Value::Mapping(m) => {
            for (k, v) in m {
                let Some(k) = k.as_str() else { continue };
                let here = if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                };
                if let (Some(max), Some(n)) = (bound(k), v.as_u64()) {
                    if n > max {
                        return Err(Invalid::new(
                            here,
                            format!("{n} is more than the largest allowed, {max}"),
                        ));
                    }
                }
                check(v, &here)?;
            }
            Ok(())
        }
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check(v, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}
