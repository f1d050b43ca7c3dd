//! `${VAR}` and `${VAR:-default}` substitution in the raw YAML text, before it is parsed.
//!
//! Substitution runs line by line so YAML line numbers stay true; whole-line comments are left
//! alone (a commented-out `${UNSET}` is not an error); `$${` stands for a literal `${`.
//! [`same_structure`] then checks that the values only filled values: an environment value that
//! would add keys, items or nesting is refused.

/// A reference that cannot be substituted: the line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SubstError {
    /// 1-based line of the reference.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Looks up an environment variable. A trait-free closure keeps tests independent of the process env.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Replace every `${VAR}` / `${VAR:-default}` in `text`. An unset variable without a default is an
/// error naming the variable and the line.
pub fn substitute(text: &str, lookup: Lookup<'_>) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    for (idx, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        substitute_line(idx + 1, line, lookup, &mut out)?;
    }
    Ok(out)
}

/// Line `number` of the text, appended to `out`.
fn substitute_line(
    number: usize,
    line: &str,
    lookup: Lookup<'_>,
    out: &mut String,
) -> Result<(), SubstError> {
    let fail = |message: String| SubstError {
        line: number,
        message,
    };
    let mut rest = line;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| fail("unterminated '${' (missing '}')".to_string()))?;
            let expr = &after[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(fail(format!(
                    "'${{{expr}}}' is not a valid variable reference"
                )));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(fail(format!(
                        "environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                    )))
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(())
}

/// Check that substitution changed values only, never the file's structure: `substituted` must
/// have the same mappings and sequences as `text` with every reference replaced by a plain word.
/// An environment value with a newline or a `: ` could otherwise add keys (an admin token, say).
/// The error names the path where the structure differs.
pub fn same_structure(text: &str, substituted: &str) -> Result<(), String> {
    let template = match substitute(text, &|_| Some("sluice0env0value".into())) {
        Ok(t) => t,
        Err(_) => return Ok(()),
    };
    let parse = |t: &str| serde_yaml::from_str::<serde_yaml::Value>(t).ok();
    match (parse(&template), parse(substituted)) {
        (Some(a), Some(b)) => compare(&a, &b, ""),
        _ => Ok(()), // the parser reports a broken file itself
    }
}

fn compare(a: &serde_yaml::Value, b: &serde_yaml::Value, path: &str) -> Result<(), String> {
    use serde_yaml::Value;
    let at = |p: &str| {
        if p.is_empty() {
            "the top level".to_string()
        } else {
            p.to_string()
        }
    };
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            if x.len() != y.len() {
                return Err(format!(
                    "{}: an environment value added or removed keys",
                    at(path)
                ));
            }
            for ((ka, va), (kb, vb)) in x.iter().zip(y.iter()) {
                if ka != kb {
                    return Err(format!(
                        "{}: an environment value may not name a key",
                        at(path)
                    ));
                }
                let key = ka
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| format!("{ka:?}"));
                let here = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                compare(va, vb, &here)?;
            }
            Ok(())
        }
        (Value::Sequence(x), Value::Sequence(y)) => {
            if x.len() != y.len() {
                return Err(format!(
                    "{}: an environment value added or removed items",
                    at(path)
                ));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .try_for_each(|(i, (va, vb))| compare(va, vb, &format!("{path}[{i}]")))
        }
        (Value::Tagged(x), Value::Tagged(y)) if x.tag == y.tag => compare(&x.value, &y.value, path),
        (Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_), _)
        | (_, Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_)) => Err(format!(
            "{}: an environment value must be a single value, not YAML structure",
            at(path)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_set_variables_and_defaults() {
        let got = substitute("url: http://${HOST}:${PORT:-8080}/x\n", &env).unwrap();
        assert_eq!(got, "url: http://10.0.0.1:8080/x\n");
    }

    #[test]
    fn a_set_but_empty_variable_wins_over_the_default() {
        assert_eq!(substitute("a: '${EMPTY:-d}'", &env).unwrap(), "a: ''");
    }

    #[test]
    fn unset_without_default_names_variable_and_line() {
        let err = substitute("a: 1\nb: ${NOPE}\n", &env).unwrap_err();
        assert_eq!(err.line, 2);
        let err = err.to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("NOPE"), "{err}");
    }

    #[test]
    fn comments_and_escapes_are_left_alone() {
        let text = "# token: ${NOPE}\nprice: $5 and $${LITERAL}\n";
        assert_eq!(
            substitute(text, &env).unwrap(),
            "# token: ${NOPE}\nprice: $5 and ${LITERAL}\n"
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(substitute("a: ${HOST", &env)
            .unwrap_err()
            .message
            .contains("unterminated"));
        assert!(substitute("a: ${1X}", &env)
            .unwrap_err()
            .message
            .contains("not a valid"));
        assert!(substitute("a: ${}", &env)
            .unwrap_err()
            .message
            .contains("not a valid"));
    }

    #[test]
    fn a_value_cannot_name_a_key_or_bring_a_tagged_collection() {
        let with = |v: &'static str| move |_: &str| Some(v.to_string());
        let text = "proxy:\n  ${K}: 1\n";
        let sub = substitute(text, &with("admin")).unwrap();
        assert!(same_structure(text, &sub)
            .unwrap_err()
            .contains("may not name a key"));
        let text = "a: ${V}\n";
        let sub = substitute(text, &with("!t {tokens: [x]}")).unwrap();
        assert!(same_structure(text, &sub)
            .unwrap_err()
            .contains("single value"));
        let sub = substitute(text, &with("!t word")).unwrap();
        assert!(same_structure(text, &sub).is_err());
        let sub = substitute(text, &with("word")).unwrap();
        assert_eq!(same_structure(text, &sub), Ok(()));
    }
}
