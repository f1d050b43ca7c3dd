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
    let (date, time) = stamp(std::time::SystemTime::now());
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

/// `YYYYMMDD` and `HHMMSS` (UTC) of `at`, as Trino writes them in its ids.
fn stamp(at: std::time::SystemTime) -> (String, String) {
    // `2026-12-06T01:44:05Z`
    let text = humantime::format_rfc3339_seconds(at).to_string();
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    (digits(&text[..10]), digits(&text[11..19]))
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
    fn dates_are_trinos() {
        let at = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(stamp(at(0)), ("19700101".into(), "000000".into()));
        assert_eq!(
            stamp(at(1_796_516_645)),
            ("20261206".into(), "002405".into())
        );
        assert_eq!(stamp(at(951_782_400)), ("20000229".into(), "000000".into()));
    }
}
