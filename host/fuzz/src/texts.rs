//! Targets on text: SQL (the tables a statement reads, `kill_query` calls) and configuration.
use sluice_config::slot_text::config_to_json;
use sluice_config::{subst, Config};
use sluice_proxy::kill_query::target_query_id;
use sluice_proxy::query_id::is_query_id;
use sluice_routing::sql::{objects, Session};

use crate::{fields, text};

/// The objects a statement names: every table is `catalog.schema.table` (names are Trino's
/// unquoted form, so a quoted name with a dot has more dots), its schema and catalog are listed
/// too, and no list grows past its bound.
pub fn sql(data: &[u8]) {
    let [catalog, schema, prepared, sql] = fields::<4>(data);
    let (catalog, schema, prepared, sql) = (text(catalog), text(schema), text(prepared), text(sql));
    fn some(s: &str) -> Option<&str> {
        Some(s).filter(|s| !s.is_empty())
    }
    let session = Session {
        catalog: some(&catalog),
        schema: some(&schema),
        prepared: some(&prepared),
    };
    let found = objects(&sql, &session);
    let under = |name: &str, list: &[String]| {
        list.iter().any(|p| {
            name.strip_prefix(p.as_str())
                .is_some_and(|r| r.starts_with('.'))
        })
    };
    for table in &found.tables {
        assert!(table.split('.').count() >= 3, "table {table:?}");
        assert!(
            under(table, &found.schemas),
            "schema of {table:?} not listed"
        );
        assert!(
            under(table, &found.catalogs),
            "catalog of {table:?} not listed"
        );
    }
    for schema in &found.schemas {
        assert!(
            under(schema, &found.catalogs),
            "catalog of {schema:?} not listed"
        );
    }
    assert!(found.tables.len() <= 1000 && found.schemas.len() <= 1000);
}

/// A `kill_query` call: the id found is a valid query id that the statement spells out.
pub fn kill_query(data: &[u8]) {
    for (catalog, schema) in [(None, None), (Some("system"), Some("runtime"))] {
        if let Some(id) = target_query_id(data, catalog, schema) {
            assert!(is_query_id(&id), "{id:?}");
            let sql = String::from_utf8_lossy(data);
            assert!(sql.contains(&id), "{id:?} is not in the statement");
        }
    }
}

/// The configuration file with `${VAR}` references, and a filter slot's config text: no input
/// panics; a file that loads has the structure it has with every reference replaced by a plain
/// word (an environment value fills values, never adds keys or nesting); a filter config's JSON
/// stays within a constant factor of its text (no alias expansion).
pub fn config(data: &[u8]) {
    let [value, yaml] = fields::<2>(data);
    let (value, yaml) = (text(value), text(yaml));
    let env = |_: &str| Some(value.clone());
    if Config::from_yaml(&yaml, &env).is_ok() {
        let template =
            subst::substitute(&yaml, &|_| Some("sluice0env0value".into())).map(|t| shape_of(&t));
        let real = subst::substitute(&yaml, &env).map(|t| shape_of(&t));
        if let (Ok(Some(template)), Ok(Some(real))) = (template, real) {
            assert_eq!(template, real, "the value {value:?} changed the structure");
        }
    }
    if let Ok(json) = config_to_json(&yaml) {
        assert!(
            json.len() <= 16 * yaml.len() + 64,
            "{} bytes of config text became {} bytes of JSON",
            yaml.len(),
            json.len()
        );
        let _: serde_json::Value = serde_json::from_str(&json).expect("config JSON parses");
    }
}

/// The mappings and sequences of a YAML text, every scalar replaced by null.
fn shape_of(text: &str) -> Option<serde_yaml::Value> {
    fn shape(v: serde_yaml::Value) -> serde_yaml::Value {
        use serde_yaml::Value;
        match v {
            Value::Mapping(m) => {
                Value::Mapping(m.into_iter().map(|(k, v)| (k, shape(v))).collect())
            }
            Value::Sequence(s) => Value::Sequence(s.into_iter().map(shape).collect()),
            Value::Tagged(t) => Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
                tag: t.tag,
                value: shape(t.value),
            })),
            _ => Value::Null,
        }
    }
    serde_yaml::from_str(text).ok().map(shape)
}
