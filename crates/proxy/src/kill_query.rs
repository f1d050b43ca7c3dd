//! `CALL system.runtime.kill_query(...)`: a new statement that acts on an existing query, so it
//! must go to the cluster that owns that query. The SQL is parsed (comments, case, quoting,
//! named or positional arguments), never matched as a substring.
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Statement, Value,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::query_id::is_query_id;

/// The query id a `kill_query` call targets, if `sql` is exactly one such call with a valid id.
pub fn target_query_id(sql: &str) -> Option<String> {
    // Cheap pre-check so ordinary queries are not parsed twice on the hot path.
    if !contains_ignore_case(sql, "kill_query") {
        return None;
    }
    let statements = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
    let [Statement::Call(call)] = statements.as_slice() else {
        return None;
    };
    let name: Vec<String> = call
        .name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let parts: Vec<&str> = name.iter().map(String::as_str).collect();
    let is_kill = matches!(
        parts.as_slice(),
        ["system", "runtime", "kill_query"] | ["runtime", "kill_query"] | ["kill_query"]
    );
    if !is_kill {
        return None;
    }
    let FunctionArguments::List(list) = &call.args else {
        return None;
    };
    let mut positional = Vec::new();
    let mut named = None;
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(e) => positional.push(e),
            FunctionArg::Named { name, arg, .. } if name.value.eq_ignore_ascii_case("query_id") => {
                named = Some(arg)
            }
            FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg,
                ..
            } if name.value.eq_ignore_ascii_case("query_id") => named = Some(arg),
            _ => {}
        }
    }
    let arg = named.or_else(|| positional.first().copied())?;
    let FunctionArgExpr::Expr(Expr::Value(v)) = arg else {
        return None;
    };
    let id = match &v.value {
        Value::SingleQuotedString(s) => s.as_str(),
        _ => return None,
    };
    is_query_id(id).then(|| id.to_string())
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "20240101_120000_00042_abcde";

    #[test]
    fn positional_and_named_arguments() {
        let sqls = [
            format!("CALL system.runtime.kill_query('{ID}')"),
            format!("CALL system.runtime.kill_query('{ID}', 'too slow')"),
            format!("CALL system.runtime.kill_query(query_id => '{ID}', message => 'x')"),
            format!("CALL system.runtime.kill_query(message => 'x', query_id => '{ID}')"),
            format!("call SYSTEM.Runtime.KILL_QUERY(QUERY_ID => '{ID}')"),
            format!("CALL \"system\".\"runtime\".\"kill_query\"('{ID}')"),
            format!("-- stop it\nCALL system.runtime.kill_query(/* id */ '{ID}');"),
            format!("  /* a */ CALL runtime.kill_query('{ID}')"),
        ];
        for sql in &sqls {
            assert_eq!(target_query_id(sql).as_deref(), Some(ID), "{sql}");
        }
    }

    #[test]
    fn everything_else_is_not_a_kill() {
        let sqls = [
            "SELECT 1".to_string(),
            format!("SELECT 'CALL system.runtime.kill_query(''{ID}'')'"),
            format!("-- CALL system.runtime.kill_query('{ID}')\nSELECT 1"),
            format!("CALL system.runtime.other_proc('{ID}')"),
            format!("CALL mycatalog.runtime.kill_query('{ID}')"),
            "CALL system.runtime.kill_query('not-an-id')".to_string(),
            "CALL system.runtime.kill_query(message => 'x')".to_string(),
            format!("CALL system.runtime.kill_query('{ID}'); SELECT 1"),
            "CALL system.runtime.kill_query(".to_string(),
            format!("SELECT kill_query FROM t WHERE id = '{ID}'"),
        ];
        for sql in &sqls {
            assert_eq!(target_query_id(sql), None, "{sql}");
        }
    }
}
