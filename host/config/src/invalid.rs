//! A validation failure names the field by its path (`cache.valkey.url`, `backends[1].name`), and
//! [`line_of`] finds that path's line in the YAML text, so a repeated key (`url:` under a backend
//! and under `cache.valkey`) is reported where it really is.

/// A value serde accepted but Sluice cannot use: the field's path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Invalid {
    /// Dotted path of the field, with `[i]` for list items: `backends[1].url`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl Invalid {
    /// `field` (a path relative to the section that checks it) is wrong.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: field.into(),
            message: message.into(),
        }
    }

    /// The same failure, seen from the parent: `url` under `valkey` is `valkey.url`.
    pub fn under(mut self, parent: &str) -> Self {
        self.path = if self.path.starts_with('[') {
            format!("{parent}{}", self.path)
        } else {
            format!("{parent}.{}", self.path)
        };
        self
    }
}

/// `Ok` when `value` is not zero, else an [`Invalid`] naming `field`.
pub fn positive(field: &str, value: u64) -> Result<(), Invalid> {
    if value == 0 {
        return Err(Invalid::new(field, "must be greater than 0"));
    }
    Ok(())
}

/// One step of a field path.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// A content line: its number, indentation (a `- ` item counts as two more), and text after the
/// indentation (and after `- `).
struct Line<'a> {
    no: usize,
    indent: usize,
    item: bool,
    text: &'a str,
}

fn content_lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(no, raw)| {
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                return None;
            }
            let indent = raw.len() - trimmed.len();
            Some(
                match trimmed
                    .strip_prefix("- ")
                    .or((trimmed == "-").then_some(""))
                {
                    Some(after) => {
                        let after_trim = after.trim_start();
                        Line {
                            no,
                            indent: indent + 2 + (after.len() - after_trim.len()),
                            item: true,
                            text: after_trim,
                        }
                    }
                    None => Line {
                        no,
                        indent,
                        item: false,
                        text: trimmed,
                    },
                },
            )
        })
        .collect()
}

/// Whether `text` starts with the mapping key `key` (plain or quoted).
fn is_key(text: &str, key: &str) -> Option<usize> {
    for quote in ["", "\"", "'"] {
        let candidate = format!("{quote}{key}{quote}:");
        if text.starts_with(&candidate) {
            let rest = &text[candidate.len()..];
            if rest.is_empty() || rest.starts_with([' ', '\t']) {
                return Some(candidate.len());
            }
        }
    }
    None
}

/// The 1-based line of the field at `path` in `text`, or of its deepest parent that is there.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let lines = content_lines(text);
    let (mut start, mut end) = (0, lines.len());
    let mut found = None;
    for step in steps(path) {
        let region = &lines[start..end];
        let Some(base) = region.iter().map(|l| l.indent).min() else {
            break;
        };
        match step {
            Step::Key(key) => {
                let Some(at) = region
                    .iter()
                    .position(|l| l.indent == base && is_key(l.text, key).is_some())
                else {
                    break;
                };
                let line = &region[at];
                found = Some(line.no);
                let after = line.text[is_key(line.text, key).unwrap_or(0)..].trim_start();
                if !after.is_empty() && !after.starts_with('#') {
                    break; // a scalar, or a flow collection: the rest of the path is on this line
                }
                let next = region[at + 1..]
                    .iter()
                    .position(|l| l.indent <= base)
                    .map_or(region.len(), |p| at + 1 + p);
                (start, end) = (start + at + 1, start + next);
            }
            Step::Index(n) => {
                let items: Vec<usize> = (0..region.len())
                    .filter(|&i| region[i].item && region[i].indent == base)
                    .collect();
                let Some(&at) = items.get(n) else {
                    break;
                };
                found = Some(region[at].no);
                let next = items.get(n + 1).copied().unwrap_or(region.len());
                if region[at].text.starts_with(['{', '[']) {
                    break;
                }
                (start, end) = (start + at, start + next);
                // inside the item, its first line's keys sit at the item's content indent
                let first = &lines[start];
                if first.text.is_empty() {
                    start += 1;
                }
            }
        }
        if start >= end {
            break;
        }
    }
    found.map(|no| no + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
backends:
  - name: a
    url: http://h:1
  - { name: b, url: http://h:2 }
  -
    name: c
    url: http://h:3
cache:
  valkey:
    enabled: true
    # url: commented
    url: nope://x
store:
  url: mysql://x
routing:
  chain:
    - slot: one
      module: builtin:query-count
";

    #[test]
    fn repeated_keys_are_found_under_their_own_parent() {
        assert_eq!(line_of(TEXT, "backends[0].url"), Some(3));
        assert_eq!(line_of(TEXT, "backends[1].url"), Some(4));
        assert_eq!(line_of(TEXT, "backends[2].url"), Some(7));
        assert_eq!(line_of(TEXT, "cache.valkey.url"), Some(12));
        assert_eq!(line_of(TEXT, "store.url"), Some(14));
        assert_eq!(line_of(TEXT, "routing.chain[0].module"), Some(18));
    }

    #[test]
    fn a_missing_field_points_at_its_deepest_parent() {
        assert_eq!(line_of(TEXT, "cache.valkey.pool_size"), Some(9));
        assert_eq!(line_of(TEXT, "backends[7].url"), Some(1));
        assert_eq!(line_of(TEXT, "proxy.extra_paths"), None);
    }

    #[test]
    fn flow_style_stops_at_the_line_that_holds_the_value() {
        let text = "cache: { valkey: { url: 'x' } }\nstore: {url: y}\n";
        assert_eq!(line_of(text, "cache.valkey.url"), Some(1));
        assert_eq!(line_of(text, "store.url"), Some(2));
    }

    #[test]
    fn paths_prefix_their_parent() {
        let e = Invalid::new("url", "bad").under("valkey").under("cache");
        assert_eq!(e.to_string(), "cache.valkey.url: bad");
        let e = Invalid::new("[2]", "bad").under("extra_paths");
        assert_eq!(e.path, "extra_paths[2]");
    }
}
