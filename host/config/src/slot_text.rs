//! A filter slot's config as text (a `config_file`, an upload, `PUT …/config`), turned into the
//! JSON handed to the filter's `init`. YAML anchors and aliases are refused: an alias repeats a
//! whole subtree, and nested ones make a few bytes of text expand into gigabytes ("billion
//! laughs"). They are found by a YAML event parser, not by scanning the text: quotes, multi-line
//! scalars and flow collections make a scanner miss some (`[ 'a\n b', &x 1, *x ]`).
use yaml_rust2::parser::{Event, Parser};

/// A config text that could not become the JSON handed to `init`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigTextError {
    /// The YAML event parser could not read it.
    #[error("config is not YAML/JSON: {0}")]
    Unreadable(String),
    /// serde_yaml could not read it.
    #[error("config is not YAML/JSON: {0}")]
    NotYaml(#[from] serde_yaml::Error),
    /// YAML that has no JSON form (e.g. a non-string map key).
    #[error("config is not JSON-compatible: {0}")]
    NotJson(#[from] serde_json::Error),
    /// YAML anchors or aliases (`&a`, `*a`), which can expand without bound.
    #[error("config uses YAML anchors or aliases (&name, *name), which filter configs do not accept: write the values out")]
    Aliases,
}

/// The JSON form of a filter config given as YAML or JSON text.
pub fn config_to_json(text: &str) -> Result<String, ConfigTextError> {
    if has_anchor_or_alias(text)? {
        return Err(ConfigTextError::Aliases);
    }
    let value: serde_yaml::Value = serde_yaml::from_str(text)?;
    Ok(serde_json::to_string(&value)?)
}

/// Whether `text` defines an anchor or uses an alias anywhere (every document of the stream).
fn has_anchor_or_alias(text: &str) -> Result<bool, ConfigTextError> {
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, _) = parser
            .next_token()
            .map_err(|e| ConfigTextError::Unreadable(e.to_string()))?;
        match event {
            Event::StreamEnd => return Ok(false),
            Event::Alias(_) => return Ok(true),
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _)
                if anchor > 0 =>
            {
                return Ok(true)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        matches!(config_to_json(text), Err(ConfigTextError::Aliases))
    }

    #[test]
    fn yaml_anchors_and_aliases_are_refused_wherever_they_stand() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
        assert!(refused(bomb));
        assert!(refused("- &x 1\n- *x"));
        assert!(refused("a: &x 1"));
        // after a multi-line quoted scalar, and after a JSON-like key in a flow mapping: the
        // text scanner this replaced accepted both (checked against it)
        assert!(refused("b: [ 'one\n two', &x 1, *x ]"));
        assert!(refused("{\"k\":&x [1], \"j\":*x}"));
        assert!(refused("--- &x [1]\n---\n- *x"));
    }

    #[test]
    fn ampersands_and_stars_inside_values_quotes_and_comments_are_values() {
        for fine in [
            "team: R&D",
            "rule: 'a *b &c'",
            "q: \"SELECT * FROM t\"",
            "x: 1 # &not an anchor",
            "regex: \".*\"",
            "{\"tables\": [\"hive.*.orders\"]}",
            "note: it's *fine* & good",
        ] {
            assert!(config_to_json(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn config_text_becomes_json_or_says_why_not() {
        assert_eq!(config_to_json("{a: 1}").unwrap(), r#"{"a":1}"#);
        let err = config_to_json("a: [1").unwrap_err();
        assert!(
            err.to_string().starts_with("config is not YAML/JSON"),
            "{err}"
        );
        assert!(matches!(
            config_to_json("? [a]\n: 1"),
            Err(ConfigTextError::NotJson(_))
        ));
    }
}
