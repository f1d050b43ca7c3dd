//! The translation, on Trino Gateway's documented examples and on what it cannot translate.
use super::*;

const DOCS_EXAMPLE: &str = r#"
---
name: "airflow"
description: "if query from airflow, route to etl group"
priority: 0
condition: 'request.getHeader("X-Trino-Source") == "airflow"'
actions:
  - 'result.put("routingGroup", "etl")'
---
name: "airflow special"
priority: 1
condition: 'request.getHeader("X-Trino-Source") == "airflow" && request.getHeader("X-Trino-Client-Tags") contains "label=special"'
actions:
  - 'result.put("routingGroup", "etl-special")'
---
name: "sales tables"
condition: 'trinoQueryProperties.tablesContains("hive.sales.orders") || trinoQueryProperties.getCatalogs().contains("iceberg")'
actions:
  - 'result.put("routingGroup", "heavy")'
---
name: "team"
condition: "request.getHeader(\"X-Team\") != null && trinoRequestUser.userExistsAndEquals(\"alice\")"
actions:
  - "result.put(\"routingGroup\", \"growth\")"
"#;

#[test]
fn the_documented_rules_translate_and_keep_what_wins() {
    let (rules, problems) = translate(DOCS_EXAMPLE).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let order: Vec<(&str, i64)> = rules
        .iter()
        .map(|r| (r.name.as_str(), r.priority))
        .collect();
    // unset priorities are the largest, so they win in Trino Gateway: tried first here;
    // among them, the last by name fires last there
    assert_eq!(
        order,
        [
            ("team", 2147483647),
            ("sales tables #2", 2147483647),
            ("sales tables #1", 2147483647),
            ("airflow special", 1),
            ("airflow", 0)
        ]
    );
    let special = &rules[3];
    assert_eq!(special.when.source.as_deref(), Some("airflow"));
    assert_eq!(
        special.when.headers["x-trino-client-tags"],
        "(?s).*label=special.*"
    );
    assert_eq!(rules[2].when.tables, ["hive.sales.orders"]);
    assert_eq!(rules[1].when.catalogs, ["iceberg"]);
    assert_eq!(rules[0].when.user.as_deref(), Some("alice"));
    assert_eq!(rules[0].when.headers["x-team"], "(?s).*");
    let yaml = slot_yaml("rules", Some("adhoc"), rules);
    assert!(yaml.contains("module: builtin:routing-rules"), "{yaml}");
}

#[test]
fn what_cannot_be_translated_is_named() {
    let text = r#"
---
name: "no tags"
condition: 'request.getHeader("X-Trino-Source") == "airflow" && request.getHeader("X-Trino-Client-Tags") == null'
actions: ['result.put("routingGroup", "etl")']
---
name: "two tables"
condition: 'trinoQueryProperties.tablesContains("a.b.c") && trinoQueryProperties.tablesContains("a.b.d")'
actions: ['result.put("routingGroup", "etl")']
---
name: "query type"
condition: 'trinoQueryProperties.getQueryType() == "INSERT"'
actions: ['result.put("routingGroup", "etl")']
---
name: "cluster pin"
condition: "true"
actions: ['result.put("routingCluster", "c1")']
---
name: "group"
compositeRuleType: "ActivationRuleGroup"
composingRules: []
---
name: "fine"
condition: "true"
actions: ['result.put("routingGroup", "adhoc")']
"#;
    let (rules, problems) = translate(text).unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].when.is_empty());
    let all = problems.join("\n");
    for name in [
        "no tags",
        "two tables",
        "query type",
        "cluster pin",
        "group",
    ] {
        assert!(
            all.contains(&format!("rule '{name}'")),
            "{name} not named: {all}"
        );
    }
    assert!(all.contains("negation"), "{all}");
    assert!(translate("name: [unclosed").is_err());
}

#[test]
fn regex_metacharacters_in_values_are_literal() {
    assert_eq!(escape("a.b*c"), "a\\.b\\*c");
    assert_eq!(escape("label=x"), "label=x");
}
