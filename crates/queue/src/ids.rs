//! The query ids Sluice issues to waiting queries. They have Trino's shape
//! (`20261206_120000_04711_lq3k9z2x`), so every client takes them, and a coordinator part no
//! Trino makes: eight characters starting `lq` (Trino's are five, from an alphabet without `l`).
//! A follow-up tells them apart from a cluster's ids by that alone, with no lookup.
use rand::RngExt;

const MARK: &str = "lq";
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A fresh id, unique with overwhelming odds (random digits and six random characters, within
/// the second).
pub fn issue() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (date, time) = civil(now);
    let mut rng = rand::rng();
    let tail: String = (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!(
        "{date}_{time}_{:05}_{MARK}{tail}",
        rng.random_range(0..100_000u32)
    )
}

/// Whether `id` is one Sluice issued.
pub fn is_issued(id: &str) -> bool {
    id.rsplit_once('_').is_some_and(|(head, last)| {
        last.len() == 8
            && last.starts_with(MARK)
            && head.bytes().filter(|b| *b == b'_').count() == 2
    })
}

/// The secret part of a waiting query's URIs: knowing its id is not enough to poll or cancel it.
pub fn slug() -> String {
    format!("y{:016x}", rand::rng().random::<u64>())
}

/// A slot id for a query that never waited.
pub fn slot() -> String {
    format!("direct-{:016x}", rand::rng().random::<u64>())
}

/// `YYYYMMDD` and `HHMMSS` (UTC) of `secs` since the epoch.
fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_ids_have_trinos_shape_and_are_told_apart() {
        let id = issue();
        assert!(is_issued(&id), "{id}");
        let parts: Vec<&str> = id.split('_').collect();
        assert_eq!(parts.len(), 4);
        assert!(parts[..3]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit())));
        assert_ne!(issue(), id);
        // a cluster's ids (Trino's, and the fake coordinator's five letters) are not ours
        assert!(!is_issued("20261206_120000_00001_abcde"));
        assert!(!is_issued("20261206_120000_00001_lqabc"));
        assert!(!is_issued("lq345678"));
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil(0), ("19700101".into(), "000000".into()));
        assert_eq!(civil(1_796_516_645), ("20261206".into(), "002405".into()));
        assert_eq!(civil(951_782_400), ("20000229".into(), "000000".into()));
    }
}
