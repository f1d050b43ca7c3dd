//! `CALL system.runtime.kill_query(...)`: a new statement that acts on an existing query, so it
//! must go to the cluster that owns that query.
//!
//! Recognised by a single pass over the bytes that keeps nothing but the id it is looking for:
//! O(length) time and constant memory on any input (a 15 MiB body is walked once, never parsed
//! into a tree). Every statement that does not start with `CALL` is rejected at its first word.
//! Comments, case, quoted identifiers, named or positional arguments are understood, and the
//! procedure name resolves as Trino resolves it: `kill_query` alone means
//! `<session catalog>.<session schema>.kill_query`, `runtime.kill_query` means
//! `<session catalog>.runtime.kill_query`, so only a session in `system`/`runtime` makes them
//! the system procedure.
use crate::query_id::is_query_id;

/// Longest string argument kept (a query id is ~30 bytes; longer values are skipped, not kept).
const MAX_KEPT: usize = 64;

/// The query id a `kill_query` call targets, if `sql` is exactly one such call with a valid id.
/// `catalog` and `schema` are the session's (`X-Trino-Catalog`, `X-Trino-Schema`).
pub fn target_query_id(sql: &[u8], catalog: Option<&str>, schema: Option<&str>) -> Option<String> {
    let mut s = Scanner {
        sql,
        at: 0,
        open_comment: false,
    };
    s.skip_blank()?;
    if !s.word()?.eq_ignore_ascii_case("call") {
        return None;
    }
    // the procedure name: up to three identifiers
    let mut name: Vec<String> = Vec::with_capacity(3);
    loop {
        s.skip_blank()?;
        name.push(s.identifier()?);
        s.skip_blank()?;
        match s.peek()? {
            b'.' if name.len() < 3 => s.at += 1,
            b'(' => break,
            _ => return None,
        }
    }
    let session = |v: Option<&str>| v.map(str::to_ascii_lowercase);
    let resolved = match name.as_slice() {
        [c, sc, p] => (Some(c.clone()), Some(sc.clone()), p),
        [sc, p] => (session(catalog), Some(sc.clone()), p),
        [p] => (session(catalog), session(schema), p),
        _ => return None,
    };
    if resolved.0.as_deref() != Some("system")
        || resolved.1.as_deref() != Some("runtime")
        || resolved.2 != "kill_query"
    {
        return None;
    }
    s.at += 1; // (
               // only the first positional value and the `query_id` one are kept
    let (mut positional, mut named, mut args) = (None, None, 0usize);
    loop {
        s.skip_blank()?;
        if s.peek()? == b')' && args == 0 {
            s.at += 1;
            break;
        }
        // `name => value` or `value`
        let arg_name = match s.peek()? {
            b'\'' => None,
            _ => {
                let n = s.identifier()?;
                s.skip_blank()?;
                s.expect(b"=>")?;
                s.skip_blank()?;
                Some(n)
            }
        };
        let value = s.string()?;
        args += 1;
        match arg_name.as_deref() {
            Some("query_id") => named = Some(value),
            Some(_) => {}
            None if positional.is_none() => positional = Some(value),
            None => {}
        }
        s.skip_blank()?;
        match s.next()? {
            b',' => continue,
            b')' => break,
            _ => return None,
        }
    }
    // nothing may follow but one `;`, blanks and comments
    if s.skip_blank().is_some() && s.peek() == Some(b';') {
        s.at += 1;
    }
    if s.skip_blank().is_some() || s.open_comment {
        return None;
    }
    let id = named.or(positional).flatten()?;
    is_query_id(&id).then_some(id)
}

struct Scanner<'a> {
    sql: &'a [u8],
    at: usize,
    /// A block comment never ended: a syntax error, whatever came before.
    open_comment: bool,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.sql.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, token: &[u8]) -> Option<()> {
        let end = self.at.checked_add(token.len())?;
        (self.sql.get(self.at..end)? == token).then(|| self.at = end)
    }

    /// Skip whitespace and comments; `None` at the end of the text (or in an open comment).
    fn skip_blank(&mut self) -> Option<()> {
        loop {
            match self.peek()? {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.at += 1,
                b'-' if self.sql.get(self.at + 1) == Some(&b'-') => {
                    while !matches!(self.next()?, b'\n') {}
                }
                b'/' if self.sql.get(self.at + 1) == Some(&b'*') => {
                    self.at += 2;
                    while self.expect(b"*/").is_none() {
                        if self.next().is_none() {
                            self.open_comment = true;
                            return None;
                        }
                    }
                }
                _ => return Some(()),
            }
        }
    }

    /// An unquoted word (`[A-Za-z_][A-Za-z0-9_]*`), as it is written.
    fn word(&mut self) -> Option<&str> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.at += 1;
        }
        let w = &self.sql[start..self.at];
        (!w.is_empty() && !w[0].is_ascii_digit())
            .then(|| std::str::from_utf8(w).ok())
            .flatten()
    }

    /// An identifier, unquoted or `"quoted"` (`""` inside), lower-cased as Trino does; at most
    /// [`MAX_KEPT`] bytes kept (longer cannot be a name that matters here).
    fn identifier(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            let w = self.word()?;
            return (w.len() <= MAX_KEPT).then(|| w.to_ascii_lowercase());
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' if self.peek() == Some(b'"') => {
                    self.at += 1;
                    out.push(b'"');
                }
                b'"' => break,
                b => out.push(b),
            }
            if out.len() > MAX_KEPT {
                return None;
            }
        }
        String::from_utf8(out).ok().map(|s| s.to_lowercase())
    }

    /// A `'string'` literal (`''` inside): its value when at most [`MAX_KEPT`] bytes, else
    /// `Some(None)` (skipped, not kept); `None` if it is not a string or never ends.
    fn string(&mut self) -> Option<Option<String>> {
        if self.next()? != b'\'' {
            return None;
        }
        let mut kept = Some(Vec::new());
        loop {
            let b = match self.next()? {
                b'\'' if self.peek() == Some(b'\'') => {
                    self.at += 1;
                    b'\''
                }
                b'\'' => break,
                b => b,
            };
            if let Some(v) = &mut kept {
                v.push(b);
                if v.len() > MAX_KEPT {
                    kept = None;
                }
            }
        }
        Some(kept.and_then(|v| String::from_utf8(v).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "20240101_120000_00042_abcde";

    fn target(sql: &str) -> Option<String> {
        target_query_id(sql.as_bytes(), None, None)
    }

    #[test]
    fn positional_and_named_arguments() {
        let sqls = [
            format!("CALL system.runtime.kill_query('{ID}')"),
            format!("CALL system.runtime.kill_query('{ID}', 'too slow')"),
            format!("CALL system.runtime.kill_query(query_id => '{ID}', message => 'x')"),
            format!("CALL system.runtime.kill_query(message => 'it''s slow', query_id => '{ID}')"),
            format!("call SYSTEM.Runtime.KILL_QUERY(QUERY_ID => '{ID}')"),
            format!("CALL \"system\".\"runtime\".\"kill_query\"('{ID}')"),
            format!("-- stop it\nCALL system.runtime.kill_query(/* id */ '{ID}');"),
            format!("  /* a */ CALL system . runtime . kill_query ( '{ID}' ) ; -- done"),
        ];
        for sql in &sqls {
            assert_eq!(target(sql).as_deref(), Some(ID), "{sql}");
        }
    }

    #[test]
    fn short_names_resolve_against_the_session_as_trino_does() {
        let short = format!("CALL kill_query('{ID}')");
        let two = format!("CALL runtime.kill_query('{ID}')");
        let at = |sql: &str, c, s| target_query_id(sql.as_bytes(), c, s);
        assert_eq!(
            at(&short, Some("system"), Some("runtime")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            at(&short, Some("SYSTEM"), Some("Runtime")).as_deref(),
            Some(ID)
        );
        assert_eq!(at(&short, Some("hive"), Some("runtime")), None);
        assert_eq!(at(&short, None, None), None);
        assert_eq!(at(&two, Some("system"), Some("web")).as_deref(), Some(ID));
        assert_eq!(at(&two, Some("hive"), None), None);
        assert_eq!(at(&two, None, None), None);
    }

    #[test]
    fn everything_else_is_not_a_kill() {
        let sqls = [
            "SELECT 1".to_string(),
            format!("SELECT 'CALL system.runtime.kill_query(''{ID}'')'"),
            format!("-- CALL system.runtime.kill_query('{ID}')\nSELECT 1"),
            format!("CALL system.runtime.other_proc('{ID}')"),
            format!("CALL mycatalog.runtime.kill_query('{ID}')"),
            format!("CALL a.system.runtime.kill_query('{ID}')"),
            "CALL system.runtime.kill_query('not-an-id')".to_string(),
            "CALL system.runtime.kill_query(message => 'x')".to_string(),
            "CALL system.runtime.kill_query()".to_string(),
            format!("CALL system.runtime.kill_query('{ID}'); SELECT 1"),
            format!("CALL system.runtime.kill_query('{ID}'"),
            "CALL system.runtime.kill_query(".to_string(),
            format!("CALL system.runtime.kill_query(1, '{ID}')"),
            format!("CALL system.runtime.kill_query('{ID}') /* open comment"),
            format!("SELECT kill_query FROM t WHERE id = '{ID}'"),
            String::new(),
        ];
        for sql in &sqls {
            assert_eq!(target(sql), None, "{sql}");
        }
        assert_eq!(target_query_id(b"CALL \xff\xfe", None, None), None);
    }

    #[test]
    fn huge_inputs_are_walked_once_and_nothing_is_kept() {
        // a long message, a long comment, a long non-CALL statement: each one linear pass
        let long = "x".repeat(8 << 20);
        let sql =
            format!("CALL system.runtime.kill_query(message => '{long}', query_id => '{ID}')");
        assert_eq!(target(&sql).as_deref(), Some(ID));
        let sql = format!("/* {long} */ CALL system.runtime.kill_query('{ID}')");
        assert_eq!(target(&sql).as_deref(), Some(ID));
        let sql = format!("CALL system.runtime.kill_query('{long}')");
        assert_eq!(target(&sql), None);
        let sql = format!("SELECT '{long} kill_query'");
        assert_eq!(target(&sql), None);
        let sql = "CALL system.runtime.kill_query(".to_string() + &"'a',".repeat(1 << 20);
        assert_eq!(target(&sql), None);
    }
}
