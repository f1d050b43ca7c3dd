//! The part of MVEL that Trino Gateway's routing rules use in conditions: comparisons of request
//! headers and of the parsed query's properties, joined by `&&`, `||`, `!` and parentheses. Parsed
//! into [`Cond`]; anything else is an error naming what was not understood.

/// A condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// `true` / `false`.
    Const(bool),
    /// Both.
    And(Box<Cond>, Box<Cond>),
    /// Either.
    Or(Box<Cond>, Box<Cond>),
    /// Not.
    Not(Box<Cond>),
    /// One fact about the request.
    Atom(Atom),
}

/// A fact Sluice's rules can test.
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    /// `request.getHeader("N") == "v"`
    HeaderEq(String, String),
    /// `request.getHeader("N") contains "s"` (a substring of the raw header)
    HeaderContains(String, String),
    /// `request.getHeader("N") != null`
    HeaderPresent(String),
    /// `trinoQueryProperties.tablesContains("c.s.t")`
    Table(String),
    /// `trinoQueryProperties.getCatalogs().contains("c")`
    Catalog(String),
    /// `trinoQueryProperties.getCatalogSchemas().contains("c.s")`
    CatalogSchema(String),
    /// `trinoRequestUser.userExistsAndEquals("u")`
    User(String),
    /// Something Sluice's rules cannot test, as written.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Ident(String),
    Op(&'static str),
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' | b'\'' => {
                let mut s = Vec::new();
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    s.push(b[i]);
                    i += 1;
                }
                if i >= b.len() {
                    return Err("a string is not closed".into());
                }
                i += 1;
                out.push(Tok::Str(String::from_utf8_lossy(&s).into_owned()));
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Ident(text[start..i].to_string()));
            }
            _ => {
                let two = text.get(i..i + 2).unwrap_or("");
                let op = ["==", "!=", "&&", "||"].into_iter().find(|o| *o == two);
                match op {
                    Some(o) => {
                        out.push(Tok::Op(o));
                        i += 2;
                    }
                    None => {
                        let one = match c {
                            b'(' => "(",
                            b')' => ")",
                            b'.' => ".",
                            b',' => ",",
                            b'!' => "!",
                            _ => return Err(format!("'{}' is not understood", c as char)),
                        };
                        out.push(Tok::Op(one));
                        i += 1;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A value: a string, `null`, or a chain of calls (`a.b("x").c()`), as written and parsed.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Str(String),
    Null,
    Bool(bool),
    /// (method or field names, each with its string arguments)
    Chain(Vec<(String, Vec<String>)>),
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.at += 1;
            return true;
        }
        false
    }
    fn expect(&mut self, op: &str) -> Result<(), String> {
        self.eat(op)
            .then_some(())
            .ok_or_else(|| format!("expected '{op}'"))
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Cond, String> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            left = Cond::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Cond, String> {
        if self.eat("!") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let inner = self.or()?;
            self.expect(")")?;
            return Ok(inner);
        }
        self.comparison()
    }
    fn term(&mut self) -> Result<Term, String> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.at += 1;
                Ok(Term::Str(s))
            }
            Some(Tok::Ident(w)) if w == "null" => {
                self.at += 1;
                Ok(Term::Null)
            }
            Some(Tok::Ident(w)) if w == "true" || w == "false" => {
                self.at += 1;
                Ok(Term::Bool(w == "true"))
            }
            Some(Tok::Ident(_)) => {
                let mut chain = Vec::new();
                loop {
                    let Some(Tok::Ident(name)) = self.peek().cloned() else {
                        return Err("expected a name".into());
                    };
                    self.at += 1;
                    let mut args = Vec::new();
                    if self.eat("(") {
                        while !self.eat(")") {
                            match self.peek().cloned() {
                                Some(Tok::Str(s)) => {
                                    self.at += 1;
                                    args.push(s);
                                }
                                _ => {
                                    return Err(format!(
                                        "{name}(…): only string arguments are understood"
                                    ))
                                }
                            }
                            self.eat(",");
                        }
                    }
                    chain.push((name, args));
                    if !self.eat(".") {
                        return Ok(Term::Chain(chain));
                    }
                }
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
    fn comparison(&mut self) -> Result<Cond, String> {
        let left = self.term()?;
        let op = match self.peek() {
            Some(Tok::Op(o)) if *o == "==" || *o == "!=" => Some(*o),
            Some(Tok::Ident(w)) if w == "contains" => Some("contains"),
            _ => None,
        };
        let Some(op) = op else {
            return Ok(match left {
                Term::Bool(b) => Cond::Const(b),
                Term::Chain(c) => Cond::Atom(atom_of_call(&c)),
                other => Cond::Atom(Atom::Unsupported(format!("{other:?}"))),
            });
        };
        self.at += 1;
        let right = self.term()?;
        Ok(compare(left, op, right))
    }
}

fn header_of(chain: &[(String, Vec<String>)]) -> Option<String> {
    match chain {
        [(r, a), (m, args)]
            if r == "request" && a.is_empty() && m == "getHeader" && args.len() == 1 =>
        {
            Some(args[0].to_ascii_lowercase())
        }
        _ => None,
    }
}

fn shown(chain: &[(String, Vec<String>)]) -> String {
    chain
        .iter()
        .map(|(n, a)| match a.is_empty() {
            true => n.clone(),
            false => format!("{n}(\"{}\")", a.join("\", \"")),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A call used as a condition on its own.
fn atom_of_call(chain: &[(String, Vec<String>)]) -> Atom {
    let arg = |i: usize| chain.get(i).and_then(|(_, a)| a.first()).cloned();
    let names: Vec<&str> = chain.iter().map(|(n, _)| n.as_str()).collect();
    match names.as_slice() {
        ["trinoQueryProperties", "tablesContains"] => Atom::Table(arg(1).unwrap_or_default()),
        ["trinoQueryProperties", "getCatalogs", "contains"] => {
            Atom::Catalog(arg(2).unwrap_or_default())
        }
        ["trinoQueryProperties", "getCatalogSchemas", "contains"] => {
            Atom::CatalogSchema(arg(2).unwrap_or_default())
        }
        ["trinoRequestUser", "userExistsAndEquals"] => Atom::User(arg(1).unwrap_or_default()),
        ["request", "getHeader", "contains"] => match (header_of(&chain[..2]), arg(2)) {
            (Some(h), Some(s)) => Atom::HeaderContains(h, s),
            _ => Atom::Unsupported(shown(chain)),
        },
        _ => Atom::Unsupported(shown(chain)),
    }
}

fn compare(left: Term, op: &str, right: Term) -> Cond {
    let header = match &left {
        Term::Chain(c) => header_of(c),
        _ => None,
    };
    let atom = match (header, op, &right) {
        (Some(h), "==", Term::Str(v)) => Atom::HeaderEq(h, v.clone()),
        (Some(h), "contains", Term::Str(v)) => Atom::HeaderContains(h, v.clone()),
        (Some(h), "!=", Term::Null) => Atom::HeaderPresent(h),
        (Some(h), "==", Term::Null) => {
            return Cond::Not(Box::new(Cond::Atom(Atom::HeaderPresent(h))))
        }
        (Some(h), "!=", Term::Str(v)) => {
            return Cond::Not(Box::new(Cond::Atom(Atom::HeaderEq(h, v.clone()))))
        }
        _ => Atom::Unsupported(format!("{left:?} {op} {right:?}")),
    };
    Cond::Atom(atom)
}

/// Parse one condition.
pub fn parse(text: &str) -> Result<Cond, String> {
    let mut p = Parser {
        toks: lex(text)?,
        at: 0,
    };
    let c = p.or()?;
    match p.peek() {
        None => Ok(c),
        Some(t) => Err(format!("unexpected {t:?} after the condition")),
    }
}
