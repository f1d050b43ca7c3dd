//! Warnings about `builtin:routing-rules` configs: rules that can never match, so an operator
//! learns at `check-config` (and in the log at start) instead of from a silent miss.
//!
//! A rule can never match when it asks for a header routers are never given (credentials and
//! framing, see `sluice_routing::request::WITHHELD_HEADERS`), names a table, schema or catalog
//! that is not fully qualified (the statement's objects always are), or comes after a rule with
//! no condition at the same or a higher priority (that one always wins first).
use serde_json::Value;
use sluice_config::Config;
use sluice_routing::request::WITHHELD_HEADERS;

/// Every warning for the routing-rules slots of `config`, each naming the slot and rule.
pub fn routing_rule_warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, slot) in config.routing.chain.iter().enumerate() {
        if slot.module != "builtin:routing-rules" {
            continue;
        }
        let Ok(cfg) = serde_json::to_value(&slot.config) else {
            continue;
        };
        let at = format!("routing.chain[{i}] (slot {})", slot.slot);
        out.extend(rules(&cfg).into_iter().map(|w| format!("{at}: {w}")));
    }
    out
}

fn rules(cfg: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(list) = cfg.get("rules").and_then(Value::as_array) else {
        return out;
    };
    // (priority, file order): the order rules are tried in
    let mut ordered: Vec<(i64, usize, &Value)> = list
        .iter()
        .enumerate()
        .map(|(i, r)| (r.get("priority").and_then(Value::as_i64).unwrap_or(0), i, r))
        .collect();
    ordered.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut catch_all: Option<String> = None;
    for (_, i, rule) in ordered {
        let name = rule
            .get("name")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("#{i}"));
        let when = rule.get("when").and_then(Value::as_object);
        if let Some(first) = &catch_all {
            out.push(format!(
                "rule '{name}' can never match: rule '{first}' has no condition and is tried first"
            ));
        }
        let Some(when) = when.filter(|w| !w.is_empty()) else {
            catch_all.get_or_insert(name);
            continue;
        };
        if let Some(headers) = when.get("headers").and_then(Value::as_object) {
            for h in headers.keys() {
                let lower = h.to_ascii_lowercase();
                if WITHHELD_HEADERS.contains(&lower.as_str()) {
                    out.push(format!(
                        "rule '{name}' can never match: header '{h}' is never given to routers (credentials and framing are withheld)"
                    ));
                }
            }
        }
        for (field, parts) in [("tables", 3), ("schemas", 2), ("catalogs", 1)] {
            let Some(values) = when.get(field).and_then(Value::as_array) else {
                continue;
            };
            for v in values.iter().filter_map(Value::as_str) {
                if v.split('.').count() != parts || v.split('.').any(str::is_empty) {
                    let form = ["catalog", "catalog.schema", "catalog.schema.table"][parts - 1];
                    out.push(format!(
                        "rule '{name}': {field} entry '{v}' can never match: statements' {field} are always written {form}"
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_that_can_never_match_are_named() {
        let text = r#"
routing:
  chain:
    - slot: rules
      module: builtin:routing-rules
      config:
        rules:
          - { name: secret, when: { headers: { Authorization: "Bearer.*" } }, group: etl }
          - { name: short, when: { tables: [orders, hive.sales.orders] }, group: etl }
          - { name: fine, when: { headers: { x-team: growth }, schemas: [hive.sales] }, group: etl }
          - { name: everything, group: adhoc }
          - { name: shadowed, when: { source: airflow }, group: etl }
          - { name: urgent, priority: 5, when: { user: ops }, group: etl }
"#;
        let config = Config::from_yaml(text, &|_| None).unwrap();
        let w = routing_rule_warnings(&config).join("\n");
        assert!(
            w.contains("'secret' can never match: header 'Authorization'"),
            "{w}"
        );
        assert!(w.contains("'short': tables entry 'orders'"), "{w}");
        assert!(!w.contains("hive.sales.orders'"), "{w}");
        assert!(!w.contains("'fine'"), "{w}");
        assert!(
            w.contains("'shadowed' can never match: rule 'everything'"),
            "{w}"
        );
        assert!(
            !w.contains("'urgent'"),
            "a higher priority is tried first: {w}"
        );
        assert!(w.starts_with("routing.chain[0] (slot rules): "), "{w}");
    }
}
