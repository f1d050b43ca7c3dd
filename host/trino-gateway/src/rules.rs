//! `sluice rules import FILE`: a Trino Gateway routing-rules file (MVEL conditions, YAML documents)
//! as the config of a `builtin:routing-rules` slot.
//!
//! What wins is kept. Trino Gateway fires every rule whose condition holds, lowest `priority`
//! first (unset: the largest int; equal priorities by name), and the last `routingGroup` set
//! wins. Sluice tries rules highest `priority` first and the first match wins. So each rule keeps
//! its priority, and rules of equal priority are written in descending name order. A condition
//! with `||` becomes one rule per alternative.
//!
//! Translated: `request.getHeader("H") == "v"`, `… contains "s"`, `… != null`,
//! `trinoQueryProperties.tablesContains("c.s.t")`, `….getCatalogs().contains("c")`,
//! `….getCatalogSchemas().contains("c.s")`, `trinoRequestUser.userExistsAndEquals("u")`, `true`,
//! joined by `&&`, `||` and parentheses. Not translated, and named: negations (`!`, `== null`,
//! `!= "v"`), two tables (or catalogs, schemas) required together, other methods, composite rule
//! groups, and actions other than `result.put("routingGroup", "…")`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod mvel;

use mvel::{Atom, Cond};

/// One translated rule, as `builtin:routing-rules` reads it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Rule {
    name: String,
    priority: i64,
    #[serde(skip_serializing_if = "When::is_empty")]
    when: When,
    group: String,
}

#[derive(Debug, Default, Serialize, PartialEq)]
struct When {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_regex: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    catalogs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    schemas: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tables: Vec<String>,
}

impl When {
    fn is_empty(&self) -> bool {
        *self == When::default()
    }

    /// Add one fact; an error when the field is taken (Sluice cannot require both).
    fn add(&mut self, atom: Atom) -> Result<(), String> {
        fn set(slot: &mut Option<String>, v: String, what: &str) -> Result<(), String> {
            match slot.replace(v) {
                None => Ok(()),
                Some(_) => Err(format!("two conditions on {what} in one alternative")),
            }
        }
        fn one(list: &mut Vec<String>, v: String, what: &str) -> Result<(), String> {
            match list.is_empty() {
                true => {
                    list.push(v);
                    Ok(())
                }
                false => Err(format!(
                    "two {what} required together (Sluice's rule matches any one of a list)"
                )),
            }
        }
        let header = |h: &mut BTreeMap<String, String>, name: String, re: String| match h
            .insert(name.clone(), re)
        {
            None => Ok(()),
            Some(_) => Err(format!(
                "two conditions on header {name} in one alternative"
            )),
        };
        match atom {
            Atom::HeaderEq(h, v) if h == "x-trino-user" => set(&mut self.user, v, "the user"),
            Atom::HeaderEq(h, v) if h == "x-trino-source" => set(&mut self.source, v, "the source"),
            Atom::HeaderEq(h, v) => header(&mut self.headers, h, escape(&v)),
            Atom::HeaderContains(h, s) if h == "x-trino-user" => set(
                &mut self.user_regex,
                format!(".*{}.*", escape(&s)),
                "the user",
            ),
            Atom::HeaderContains(h, s) if h == "x-trino-source" => set(
                &mut self.source_regex,
                format!(".*{}.*", escape(&s)),
                "the source",
            ),
            Atom::HeaderContains(h, s) => {
                header(&mut self.headers, h, format!("(?s).*{}.*", escape(&s)))
            }
            Atom::HeaderPresent(h) => header(&mut self.headers, h, "(?s).*".into()),
            Atom::User(u) => set(&mut self.user, u, "the user"),
            Atom::Table(t) => one(&mut self.tables, t.to_lowercase(), "tables"),
            Atom::Catalog(c) => one(&mut self.catalogs, c.to_lowercase(), "catalogs"),
            Atom::CatalogSchema(s) => one(&mut self.schemas, s.to_lowercase(), "schemas"),
            Atom::Unsupported(what) => Err(format!("'{what}' has no Sluice equivalent")),
        }
    }
}

/// A regex matching `text` literally.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The alternatives of a condition, each a list of facts that must all hold.
fn alternatives(c: &Cond) -> Result<Vec<Vec<Atom>>, String> {
    Ok(match c {
        Cond::Const(true) => vec![vec![]],
        Cond::Const(false) => vec![],
        Cond::Atom(a) => vec![vec![a.clone()]],
        Cond::Or(a, b) => {
            let mut v = alternatives(a)?;
            v.extend(alternatives(b)?);
            v
        }
        Cond::And(a, b) => {
            let (a, b) = (alternatives(a)?, alternatives(b)?);
            let mut v = Vec::new();
            for x in &a {
                for y in &b {
                    v.push(x.iter().chain(y).cloned().collect());
                }
            }
            v
        }
        Cond::Not(inner) => {
            return Err(format!(
                "a negation ({inner:?}) cannot be expressed: Sluice's rules only require facts"
            ))
        }
    })
}

/// The group an action sets: `result.put("routingGroup", "g")`.
fn group_of(action: &str) -> Option<String> {
    let compact: String = action.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = compact.strip_prefix("result.put(")?.strip_suffix(')')?;
    let strings: Vec<&str> = inner.split(',').collect();
    let unquote = |s: &str| {
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .map(String::from)
    };
    match strings.as_slice() {
        [k, v] if unquote(k).as_deref() == Some("routingGroup") => unquote(v),
        _ => None,
    }
}

/// Translate the rules file `text`: the rules, and what could not be translated.
pub fn translate(text: &str) -> Result<(Vec<Rule>, Vec<String>), String> {
    let mut rules = Vec::new();
    let mut problems = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value =
            serde_yaml::Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if value.is_null() {
            continue;
        }
        let get = |k: &str| value.get(k);
        let name = get("name")
            .and_then(|v| v.as_str())
            .map(String::from)
            .unwrap_or_else(|| format!("rule {}", i + 1));
        if get("compositeRuleType").is_some() {
            problems.push(format!("rule '{name}': composite rule groups are not translated; write them as separate rules with priorities"));
            continue;
        }
        let priority = get("priority")
            .and_then(|v| v.as_i64())
            .unwrap_or(i32::MAX as i64);
        let condition = get("condition").and_then(|v| v.as_str()).unwrap_or("true");
        let actions: Vec<String> = get("actions")
            .and_then(|v| v.as_sequence())
            .map(|s| {
                s.iter()
                    .filter_map(|a| a.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let groups: Vec<Option<String>> = actions.iter().map(|a| group_of(a)).collect();
        if let Some(bad) = actions.iter().zip(&groups).find(|(_, g)| g.is_none()) {
            problems.push(format!(
                "rule '{name}': action '{}' is not result.put(\"routingGroup\", \"…\")",
                bad.0
            ));
            continue;
        }
        let Some(group) = groups.into_iter().flatten().last() else {
            problems.push(format!("rule '{name}': no action sets routingGroup"));
            continue;
        };
        let alts = match mvel::parse(condition).and_then(|c| alternatives(&c)) {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("rule '{name}': condition '{condition}': {e}"));
                continue;
            }
        };
        let count = alts.len();
        for (k, atoms) in alts.into_iter().enumerate() {
            let mut when = When::default();
            if let Err(e) = atoms.into_iter().try_for_each(|a| when.add(a)) {
                problems.push(format!("rule '{name}': condition '{condition}': {e}"));
                break;
            }
            let name = match count {
                1 => name.clone(),
                _ => format!("{name} #{}", k + 1),
            };
            rules.push(Rule {
                name,
                priority,
                when,
                group: group.clone(),
            });
        }
    }
    // Sluice: highest priority first, first match wins; Trino Gateway: the last to fire wins,
    // and among equal priorities the one last by name fires last
    rules.sort_by(|a, b| b.priority.cmp(&a.priority).then(b.name.cmp(&a.name)));
    Ok((rules, problems))
}

/// The YAML of a chain slot running the translated rules.
pub fn slot_yaml(slot: &str, default_group: Option<&str>, rules: Vec<Rule>) -> String {
    #[derive(Serialize)]
    struct Config<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        default_group: Option<&'a str>,
        rules: Vec<Rule>,
    }
    #[derive(Serialize)]
    struct Slot<'a> {
        slot: &'a str,
        module: &'a str,
        config: Config<'a>,
    }
    let entry = vec![Slot {
        slot,
        module: "builtin:routing-rules",
        config: Config {
            default_group,
            rules,
        },
    }];
    serde_yaml::to_string(&entry).unwrap_or_default()
}

#[cfg(test)]
mod tests;
