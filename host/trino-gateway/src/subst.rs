//! Environment variables in a Trino Gateway file, in each form its releases read: `${ENV:VAR}`
//! (airlift), `${VAR}`, `${VAR:-default}` (Dropwizard) and `${VAR:default}`.

/// A reference that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SubstError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One `${…}`: the variable and its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The variable.
    pub var: String,
    /// Its default, if the reference gives one.
    pub default: Option<String>,
}

impl Reference {
    /// The same reference in Sluice's form (`${VAR}`, `${VAR:-default}`).
    pub fn sluice_form(&self) -> String {
        match &self.default {
            Some(d) => format!("${{{}:-{d}}}", self.var),
            None => format!("${{{}}}", self.var),
        }
    }
}

/// Read the reference inside `${` … `}`.
pub fn parse(inner: &str) -> Option<Reference> {
    let inner = inner.strip_prefix("ENV:").unwrap_or(inner);
    let (var, default) = match inner.split_once(':') {
        Some((v, d)) => (v, Some(d.strip_prefix('-').unwrap_or(d).to_string())),
        None => (inner, None),
    };
    let valid = !var.is_empty()
        && var
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    valid.then(|| Reference {
        var: var.to_string(),
        default,
    })
}

/// If `value` is exactly one reference, that reference.
pub fn whole_reference(value: &str) -> Option<Reference> {
    let inner = value.trim().strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains('}')).then(|| parse(inner)).flatten()
}

/// Replace every reference of `text` by its variable's value (else its default); whole-line
/// comments are left as they are.
pub fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| SubstError {
                line: i + 1,
                message: "'${' without a closing '}'".into(),
            })?;
            let r = parse(&after[..end]).ok_or_else(|| SubstError {
                line: i + 1,
                message: format!("'${{{}}}' is not a variable reference", &after[..end]),
            })?;
            let value = lookup(&r.var).or(r.default).ok_or_else(|| SubstError {
                line: i + 1,
                message: format!(
                    "environment variable {} is not set and has no default",
                    r.var
                ),
            })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_resolves() {
        let env = |v: &str| (v == "SET").then(|| "yes".to_string());
        let text = "a: ${ENV:SET}\nb: ${SET}\nc: ${UNSET:-d1}\nd: ${UNSET:d2}\n# ${UNSET}\n";
        assert_eq!(
            substitute(text, &env).unwrap(),
            "a: yes\nb: yes\nc: d1\nd: d2\n# ${UNSET}\n"
        );
        let err = substitute("x: 1\ny: ${ENV:UNSET}\n", &env).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("UNSET"), "{err}");
        assert_eq!(whole_reference("${ENV:PW}").unwrap().sluice_form(), "${PW}");
        assert_eq!(
            whole_reference("${H:localhost}").unwrap().sluice_form(),
            "${H:-localhost}"
        );
        assert!(whole_reference("x${H}").is_none());
    }
}
