//! The configuration as a whole: loading, defaults, validation across sections, errors that
//! name the field and its line.
use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

const ISSUE_EXAMPLE: &str = r#"
listen: 0.0.0.0:8080
admin: { listen: 127.0.0.1:8081 }
backends:
  - { name: etl-1, url: http://127.0.0.1:9001, group: etl, active: true }
  - { name: adhoc-1, url: http://127.0.0.1:9002, group: adhoc }
routing: { default_group: adhoc }
cache: { l1: { capacity: 100000, ttl_seconds: 1800 } }
health: { interval_ms: 2000, stats: ui_api }
"#;

#[test]
fn the_documented_keys_parse() {
    let c = Config::from_yaml(ISSUE_EXAMPLE, &no_env).unwrap();
    assert_eq!(c.backends.len(), 2);
    assert_eq!(c.backends[0].group, "etl");
    assert!(c.backends[1].active);
    assert_eq!(c.health.stats, StatsSource::UiApi);
    assert_eq!(c.cache.l1.capacity, 100_000);
    assert_eq!(c.groups(), vec!["adhoc", "etl"]);
}

#[test]
fn empty_file_gives_defaults() {
    let c = Config::from_yaml("", &no_env).unwrap();
    assert_eq!(c.listen.port(), 8080);
    assert_eq!(c.routing.default_group, "adhoc");
    assert!(!c.routing.strict_groups);
}

#[test]
fn unknown_keys_are_rejected_with_field_and_line() {
    let text = "backends:\n  - name: a\n    url: http://h:1\n    colour: red\n";
    let err = Config::from_yaml(text, &no_env).unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
    assert!(err.contains("backends[0]"), "{err}");
    assert!(err.contains("line 4"), "{err}");
}

#[test]
fn wrong_types_name_the_field() {
    let err = Config::from_yaml("health:\n  interval_ms: soon\n", &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("health.interval_ms"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn an_environment_value_cannot_add_structure() {
    let text = "admin:\n  listen: ${ADDR}\n";
    let evil = |n: &str| {
        (n == "ADDR").then(|| {
            "127.0.0.1:0\n  tokens: [{ token: stolen-0123456789abcdef, role: admin }]".to_string()
        })
    };
    let err = Config::from_yaml(text, &evil).unwrap_err().to_string();
    assert!(err.contains("admin"), "{err}");
    assert!(err.contains("environment value"), "{err}");
    let fine = |n: &str| (n == "ADDR").then(|| "127.0.0.1:9999".to_string());
    assert_eq!(
        Config::from_yaml(text, &fine).unwrap().admin.listen.port(),
        9999
    );
    // a value that would become a list is refused too
    let text = "backends:\n  - { name: a, url: 'http://h:1', group: ${G} }\n";
    let list = |n: &str| (n == "G").then(|| "[a, b]".to_string());
    assert!(Config::from_yaml(text, &list).is_err());
}

#[test]
fn env_substitution_feeds_the_parser() {
    let env = |n: &str| (n == "PORT").then(|| "9009".to_string());
    let text = "backends:\n  - { name: a, url: 'http://127.0.0.1:${PORT}' }\n";
    let c = Config::from_yaml(text, &env).unwrap();
    assert_eq!(c.backends[0].url, "http://127.0.0.1:9009");
}

#[test]
fn validation_names_field_and_line() {
    let text = "backends:\n  - { name: a, url: http://h:1 }\n  - { name: a, url: http://h:2 }\n";
    let err = Config::from_yaml(text, &no_env).unwrap_err().to_string();
    assert!(err.contains("backends[1].name"), "{err}");
    assert!(err.contains("used by two"), "{err}");
    assert!(err.contains("line 3"), "{err}");

    let text = "# backends\nbackends:\n  - name: a\n    url: http://h:1\n  - name: b\n    group: adhoc\n    url: 'http://h:2/path'\n";
    let err = Config::from_yaml(text, &no_env).unwrap_err().to_string();
    assert!(err.contains("backends[1].url"), "{err}");
    assert!(err.contains("line 7"), "{err}");

    let text = "backends:\n  - { name: a, url: 'ftp://h:1' }\n";
    let err = Config::from_yaml(text, &no_env).unwrap_err().to_string();
    assert!(err.contains("backends[0].url"), "{err}");
    assert!(err.contains("line 2"), "{err}");

    let text = "backends:\n  - { name: a, url: 'http://h:1', group: etl }\n";
    let err = Config::from_yaml(text, &no_env).unwrap_err().to_string();
    assert!(err.contains("routing.default_group"), "{err}");

    let err = Config::from_yaml("cache: { l1: { ttl_seconds: 0 } }", &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cache.l1.ttl_seconds"), "{err}");

    let err = Config::from_yaml(
        "cache: { l1: { ttl_seconds: 18446744073709551615 } }",
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cache.l1.ttl_seconds"), "{err}");
    assert!(err.contains("line 1"), "{err}");
    let err = Config::from_yaml("health: { interval_ms: 999999999999 }", &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("health.interval_ms"), "{err}");
    for (text, field) in [
        (
            "backends: [{ name: a, url: 'http://h:99999' }]",
            "backends[0].url",
        ),
        (
            "backends: [{ name: a, url: 'http://h:0' }]",
            "backends[0].url",
        ),
        (
            "cache: { valkey: { enabled: true, url: 'redis://h:70000/0' } }",
            "cache.valkey.url",
        ),
        ("store: { url: 'postgres://u:p@h:65536/db' }", "store.url"),
    ] {
        let err = Config::from_yaml(text, &no_env).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains("port"), "{text}: {err}");
    }
    assert!(
        Config::from_yaml("backends: [{ name: a, url: 'http://[::1]:8080' }]", &no_env).is_ok()
    );

    let err = Config::from_yaml("proxy: { extra_paths: [nope] }", &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("proxy.extra_paths"), "{err}");
}

#[test]
fn broken_yaml_is_an_error_with_a_line() {
    let err = Config::from_yaml("backends: [\n  {name: a\n", &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line"), "{err}");
}

#[test]
fn example_configs_in_the_repo_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let env = |n: &str| (n == "SLUICE_TEST_SET").then(String::new);
            Config::from_yaml(&text, &env).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "config/ should hold an example per deployment shape"
    );
}

#[test]
fn repeated_keys_are_reported_at_their_own_line() {
    let text = "backends:\n  - name: a\n    url: http://h:1\ncache:\n  valkey:\n    enabled: true\n    url: nope://x\nstore:\n  url: oracle://x\n";
    let err = Config::from_yaml(text, &no_env).unwrap_err().to_string();
    assert!(err.contains("cache.valkey.url"), "{err}");
    assert!(err.contains("line 7"), "{err}");
    let text = "backends:\n  - name: a\n    url: http://h:1\nstore:\n  url: oracle://x\n";
    let err = Config::from_yaml(text, &no_env).unwrap_err().to_string();
    assert!(err.contains("store.url"), "{err}");
    assert!(err.contains("line 5"), "{err}");
}

#[test]
fn a_callers_check_runs_after_the_sections_and_gets_a_line() {
    let text = "routing:\n  chain:\n    - { slot: a, module: 'builtin:nope' }\n";
    assert!(Config::from_yaml(text, &no_env).is_ok());
    let check = |c: &Config| -> Result<(), Invalid> {
        match c.routing.chain[0].module.as_str() {
            "builtin:nope" => Err(Invalid::new("routing.chain[0].module", "unknown builtin")),
            _ => Ok(()),
        }
    };
    let err = Config::from_yaml_with(text, &no_env, &check)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("routing.chain[0].module: unknown builtin (line 3)"),
        "{err}"
    );
}
