//! Reading a statement in one linear pass, for text too long to parse into a tree or syntax the
//! parser does not know. Words are read one at a time (comments and string literals skipped,
//! quoted identifiers understood); a few keywords announce that a name follows, and the name is
//! read there. Only names are kept, at most [`super::MAX_NAMES`] of them.
use std::collections::HashSet;

use super::{Found, Kind, Session};

/// One token; only what the rules below look at is kept.
#[derive(Debug, PartialEq)]
enum Tok {
    /// A word, lower-cased (identifiers and keywords alike).
    Word(String),
    /// A `"quoted"` identifier, as written.
    Quoted(String),
    /// A string literal: its text when it was asked for, else nothing.
    Str(Option<String>),
    /// `.`, `(`, `)`, `,`, `;` or any other single character.
    Punct(u8),
}

struct Lexer<'a> {
    sql: &'a [u8],
    at: usize,
}

impl Lexer<'_> {
    /// The next token; `keep_string` keeps a string literal's text.
    fn next(&mut self, keep_string: bool) -> Option<Tok> {
        loop {
            let b = *self.sql.get(self.at)?;
            let next = self.sql.get(self.at + 1).copied();
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.at += 1,
                b'-' if next == Some(b'-') => {
                    while self.sql.get(self.at).is_some_and(|b| *b != b'\n') {
                        self.at += 1;
                    }
                }
                b'/' if next == Some(b'*') => {
                    self.at += 2;
                    while self.at < self.sql.len() && !self.sql[self.at..].starts_with(b"*/") {
                        self.at += 1;
                    }
                    self.at += 2;
                }
                b'\'' | b'"' => {
                    let text = self.quoted(b, keep_string || b == b'"');
                    return Some(match b {
                        b'"' => Tok::Quoted(text.unwrap_or_default()),
                        _ => Tok::Str(text),
                    });
                }
                b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                    let start = self.at;
                    while self.sql.get(self.at).is_some_and(|b| {
                        b.is_ascii_alphanumeric() || *b == b'_' || *b == b'@' || *b >= 0x80
                    }) {
                        self.at += 1;
                    }
                    let word = String::from_utf8_lossy(&self.sql[start..self.at]);
                    return Some(Tok::Word(word.to_lowercase()));
                }
                b if b.is_ascii_digit() => {
                    while self
                        .sql
                        .get(self.at)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'.')
                    {
                        self.at += 1;
                    }
                    return Some(Tok::Punct(b'0'));
                }
                b => {
                    self.at += 1;
                    return Some(Tok::Punct(b));
                }
            }
        }
    }

    /// A literal between `q` quotes (`qq` inside); its text when `keep`.
    fn quoted(&mut self, q: u8, keep: bool) -> Option<String> {
        self.at += 1;
        let mut text = keep.then(Vec::new);
        while let Some(&b) = self.sql.get(self.at) {
            self.at += 1;
            if b == q {
                if self.sql.get(self.at) == Some(&q) {
                    self.at += 1;
                } else {
                    break;
                }
            }
            if let Some(t) = &mut text {
                t.push(b);
            }
        }
        text.map(|t| String::from_utf8_lossy(&t).into_owned())
    }
}

/// Words that cannot start a name where one is expected.
fn not_a_name(w: &str) -> bool {
    matches!(
        w,
        "select" | "values" | "with" | "lateral" | "unnest" | "if" | "not" | "exists" | "only"
    )
}

/// Read `sql` into `found`.
pub(super) fn read(sql: &str, session: &Session, found: &mut Found, depth: u8) {
    let mut lx = Lexer {
        sql: sql.as_bytes(),
        at: 0,
    };
    let mut names: Vec<(Kind, Vec<String>)> = Vec::new();
    let mut ctes: HashSet<String> = HashSet::new();
    let mut cte: Option<String> = None;
    // the statement's first words, and the last token
    let mut first: Vec<String> = Vec::new();
    let mut prev: Option<Tok> = None;
    // a name is announced: its kind
    let mut expect: Option<Kind> = None;
    let mut keep_string = false;
    while let Some(tok) = lx.next(keep_string) {
        keep_string = false;
        if let Some(kind) = expect.take() {
            let start = match &tok {
                // IF [NOT] EXISTS name; ON TABLE name; TABLE(name)
                Tok::Word(w)
                    if matches!(
                        w.as_str(),
                        "if" | "not" | "exists" | "table" | "view" | "materialized" | "column"
                    ) =>
                {
                    expect = Some(kind);
                    None
                }
                Tok::Word(w) if w == "schema" => {
                    expect = Some(Kind::Schema);
                    None
                }
                Tok::Punct(b'(') if matches!(&prev, Some(Tok::Word(t)) if t == "table") => {
                    expect = Some(kind);
                    None
                }
                Tok::Word(w) if !not_a_name(w) => Some(w.clone()),
                Tok::Quoted(q) => Some(q.clone()),
                _ => None,
            };
            if let (Some(start), true) = (start, expect.is_none()) {
                let (mut name, after) = read_name(&mut lx, start);
                if name.len() == 4 {
                    name.pop(); // COMMENT ON COLUMN c.s.t.column
                }
                // `FROM f(…)`, `USING (cols)`: a function or a list, not a name
                let call =
                    after == Some(Tok::Punct(b'(')) && !first_is(&first, &["insert", "create"]);
                if !call && names.len() < super::MAX_NAMES {
                    names.push((kind, name));
                }
                prev = after;
                if prev == Some(Tok::Punct(b';')) {
                    first.clear();
                }
                continue;
            }
            if expect.is_some() {
                // a word between the keyword and the name: still expecting it
                if let Tok::Word(w) = &tok {
                    if first.len() < 4 {
                        first.push(w.clone());
                    }
                }
                prev = Some(tok);
                continue;
            }
        }
        // CTE: `WITH [RECURSIVE] name [(columns)] AS (`, `, name … AS (`
        match (&tok, &prev) {
            (Tok::Word(name) | Tok::Quoted(name), Some(Tok::Word(w)))
                if w == "with" || w == "recursive" =>
            {
                cte = Some(name.to_lowercase())
            }
            (Tok::Word(name) | Tok::Quoted(name), Some(Tok::Punct(b','))) => {
                cte = Some(name.to_lowercase())
            }
            (Tok::Punct(b'('), Some(Tok::Word(w))) if w == "as" => {
                if let Some(name) = cte.take() {
                    ctes.insert(name);
                }
            }
            _ => {}
        }
        if let Tok::Word(w) = &tok {
            if first.len() < 4 {
                first.push(w.clone());
            }
            expect = announce(w, &first, prev.as_ref());
            if w == "immediate" && first_is(&first, &["execute"]) {
                keep_string = true;
            }
        }
        if let Tok::Str(Some(text)) = &tok {
            if first_is(&first, &["execute", "immediate"]) {
                super::read(text, session, found, depth + 1);
            }
        }
        if let (Tok::Word(name), ["execute", _]) = (&tok, first_words(&first)) {
            if name != "immediate" {
                if let Some(text) = session.prepared(name) {
                    super::read(&text, session, found, depth + 1);
                }
            }
        }
        if tok == Tok::Punct(b';') {
            first.clear();
        }
        prev = Some(tok);
    }
    for (kind, name) in names {
        let is_cte = matches!(name.as_slice(), [one] if ctes.contains(&one.to_lowercase()));
        if !(kind == Kind::Table && is_cte) {
            found.add(kind, &name, session);
        }
    }
}

fn first_words(first: &[String]) -> [&str; 2] {
    [
        first.first().map(String::as_str).unwrap_or(""),
        first.get(1).map(String::as_str).unwrap_or(""),
    ]
}

fn first_is(first: &[String], words: &[&str]) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(i, w)| first.get(i).is_some_and(|f| f == w))
}

/// The kind of name a keyword announces, given the statement's first words.
fn announce(w: &str, first: &[String], prev: Option<&Tok>) -> Option<Kind> {
    let [a, b] = first_words(first);
    let prev_word = match prev {
        Some(Tok::Word(p)) => p.as_str(),
        _ => "",
    };
    match w {
        "from" | "in"
            if a == "show"
                && matches!(b, "schemas" | "tables" | "functions" | "views" | "columns") =>
        {
            match b {
                "schemas" => Some(Kind::Catalog),
                "columns" => Some(Kind::Table),
                _ => Some(Kind::Schema),
            }
        }
        "from" | "join" | "into" => Some(Kind::Table),
        "update" if first.len() == 1 => Some(Kind::Table),
        "using" if a == "merge" => Some(Kind::Table),
        "table" | "view" if prev_word != "with" => Some(Kind::Table),
        "schema" => Some(Kind::Schema),
        "for" if a == "show" && b == "stats" => Some(Kind::Table),
        "on" if matches!(a, "grant" | "revoke" | "comment" | "deny")
            || (a == "show" && b == "grants") =>
        {
            Some(Kind::Table)
        }
        "describe" | "desc" if first.len() == 1 => Some(Kind::Table),
        "use" if first.len() == 1 => Some(Kind::Schema),
        "to" if prev_word == "rename" => match first.get(1).map(String::as_str) {
            Some("schema") => Some(Kind::Schema),
            _ => Some(Kind::Table),
        },
        _ => None,
    }
}

/// A qualified name starting with `start`: up to four parts (a column of COMMENT ON COLUMN
/// has four), and the token after it.
fn read_name(lx: &mut Lexer, start: String) -> (Vec<String>, Option<Tok>) {
    let mut name = vec![start];
    loop {
        let tok = lx.next(false);
        if tok != Some(Tok::Punct(b'.')) || name.len() >= 4 {
            return (name, tok);
        }
        match lx.next(false) {
            Some(Tok::Word(w)) => name.push(w),
            Some(Tok::Quoted(q)) => name.push(q),
            other => return (name, other),
        }
    }
}
