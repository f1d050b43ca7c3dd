//! Fuzz targets: every parser that reads what a client, a backend or an operator sends, each with
//! the properties it must keep on any input. A target panics when a property breaks; AFL (the
//! `fuzz/` project, `fuzz/run`) feeds them generated inputs, and `tests/corpus.rs` replays the seed
//! corpus and every input that once broke one (`fuzz/regressions/`), so a fixed crash stays fixed.
//!
//! # Layout
//!
//! | module | targets |
//! | --- | --- |
//! | this file | [`TARGETS`]: name → function; [`fields`]: cut an input into parts |
//! | [`requests`] | `classify` (paths, query ids, dot-segments), `headers` (forwarded headers, login cookie, what routers see) |
//! | [`texts`] | `sql` (tables a statement reads), `kill_query`, `config` (the YAML file, `${VAR}`, filter configs) |
//! | [`bodies`] | `rewrite` (nextUri and segment URIs, streamed in arbitrary chunks), `multipart` (uploads) |
#![forbid(unsafe_code)]

pub mod bodies;
pub mod requests;
pub mod texts;

/// A target: takes any bytes, panics when a property breaks.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz/corpus/` and `fuzz/regressions/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("classify", requests::classify),
    ("headers", requests::headers),
    ("sql", texts::sql),
    ("kill_query", texts::kill_query),
    ("config", texts::config),
    ("rewrite", bodies::rewrite),
    ("multipart", bodies::multipart),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// `data` cut into `N` fields at NUL bytes (missing fields are empty; the last takes the rest).
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for (i, slot) in out.iter_mut().enumerate() {
        if i + 1 == N {
            *slot = rest;
            break;
        }
        match rest.iter().position(|b| *b == 0) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    out
}

/// `bytes` as text, replacing what is not UTF-8.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
