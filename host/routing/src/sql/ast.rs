//! Reading a statement through sqlparser's tree: each statement kind names its objects in its own
//! fields; queries anywhere inside are walked for relations, CTE names (left out) and table
//! functions.
use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AlterSchemaOperation, AlterTableOperation, AlterViewOperation, CommentObject, Expr,
    FunctionArg, FunctionArgExpr, FunctionArguments, GrantObjects, ObjectName, ObjectNamePart,
    ObjectType, Query, SchemaName, Set, ShowCreateObject, ShowStatementOptions, Statement,
    TableFactor, Use, Value, Visit, Visitor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::{Found, Kind, Session};

/// Parse `sql` and add what it names to `found`; false if it does not parse.
pub(super) fn read(sql: &str, session: &Session, found: &mut Found, depth: u8) -> bool {
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, sql) else {
        return false;
    };
    // `SHOW STATS FOR t`, `SHOW GRANTS ON t` parse as a variable name: read by the scanner
    if statements
        .iter()
        .any(|s| matches!(s, Statement::ShowVariable { .. }))
    {
        return false;
    }
    for st in &statements {
        if statement(st, session, found, depth) {
            let mut walker = Walker {
                session,
                found: &mut *found,
                ctes: HashSet::new(),
            };
            let _ = st.visit(&mut walker);
        }
    }
    true
}

/// The identifiers of a name, as written.
fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.value.clone()),
            _ => None,
        })
        .collect()
}

fn show_parent(options: &ShowStatementOptions) -> Option<Vec<String>> {
    let parent = options.show_in.as_ref()?.parent_name.as_ref()?;
    Some(parts(parent))
}

/// What a statement names outside its queries; whether its queries and relations are still to
/// be walked.
fn statement(st: &Statement, session: &Session, found: &mut Found, depth: u8) -> bool {
    let mut add = |kind, name: &ObjectName| found.add(kind, &parts(name), session);
    match st {
        Statement::Execute {
            name: Some(name),
            parameters,
            ..
        } => {
            let name = parts(name);
            if let [word] = name.as_slice() {
                if word.eq_ignore_ascii_case("immediate") {
                    // EXECUTE IMMEDIATE 'text' [USING …]: the text is the statement
                    for p in parameters {
                        if let Expr::Value(v) = p {
                            if let Value::SingleQuotedString(text) = &v.value {
                                super::read(text, session, found, depth + 1);
                            }
                        }
                    }
                    return false;
                }
                if let Some(text) = session.prepared(word) {
                    super::read(&text, session, found, depth + 1);
                }
            }
            false
        }
        Statement::Use(u) => {
            match u {
                Use::Catalog(n) => add(Kind::Catalog, n),
                Use::Object(n) | Use::Schema(n) | Use::Database(n) => add(Kind::Schema, n),
                _ => {}
            }
            false
        }
        Statement::Drop {
            object_type, names, ..
        } => {
            let kind = match object_type {
                ObjectType::Schema | ObjectType::Database => Kind::Schema,
                _ => Kind::Table,
            };
            names.iter().for_each(|n| add(kind, n));
            false
        }
        Statement::CreateSchema { schema_name, .. } => {
            if let SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _) = schema_name {
                add(Kind::Schema, n);
            }
            false
        }
        Statement::AlterSchema(a) => {
            let source = parts(&a.name);
            found.add(Kind::Schema, &source, session);
            for op in &a.operations {
                if let AlterSchemaOperation::Rename { name } = op {
                    // the new name stays in the source's catalog
                    let mut target = parts(name);
                    if let ([catalog, _], [_]) = (source.as_slice(), target.as_slice()) {
                        target.insert(0, catalog.clone());
                    }
                    found.add(Kind::Schema, &target, session);
                }
            }
            false
        }
        Statement::AlterTable(a) => {
            for op in &a.operations {
                if let AlterTableOperation::RenameTable { table_name } = op {
                    let (sqlparser::ast::RenameTableNameKind::To(n)
                    | sqlparser::ast::RenameTableNameKind::As(n)) = table_name;
                    add(Kind::Table, n);
                }
            }
            true
        }
        Statement::AlterView(a) => {
            add(Kind::Table, &a.name);
            if let AlterViewOperation::RenameTo { new_name } = &a.operation {
                add(Kind::Table, new_name);
            }
            true
        }
        Statement::Comment {
            object_type,
            object_name,
            ..
        } => {
            let mut p = parts(object_name);
            match object_type {
                CommentObject::Column => {
                    p.pop();
                    found.add(Kind::Table, &p, session);
                }
                CommentObject::Schema | CommentObject::Database => {
                    found.add(Kind::Schema, &p, session)
                }
                _ => found.add(Kind::Table, &p, session),
            }
            false
        }
        Statement::Grant(g) => {
            grant_objects(g.objects.as_ref(), session, found);
            false
        }
        Statement::Revoke(r) => {
            grant_objects(r.objects.as_ref(), session, found);
            false
        }
        Statement::ShowTables { show_options, .. } | Statement::ShowViews { show_options, .. } => {
            if let Some(p) = show_parent(show_options) {
                found.add(Kind::Schema, &p, session);
            }
            false
        }
        Statement::ShowSchemas { show_options, .. } => {
            if let Some(p) = show_parent(show_options) {
                found.add(Kind::Catalog, &p, session);
            }
            false
        }
        Statement::ShowColumns { show_options, .. } => {
            if let Some(p) = show_parent(show_options) {
                found.add(Kind::Table, &p, session);
            }
            false
        }
        Statement::ShowCreate { obj_type, obj_name } => {
            if matches!(obj_type, ShowCreateObject::Table | ShowCreateObject::View) {
                add(Kind::Table, obj_name);
            }
            false
        }
        Statement::ExplainTable { table_name, .. } => {
            add(Kind::Table, table_name);
            false
        }
        Statement::Call(f) => {
            // a procedure lives in a schema: `CALL c.s.p` or `CALL s.p`
            let mut p = parts(&f.name);
            if p.len() >= 2 {
                p.pop();
                found.add(Kind::Schema, &p, session);
            }
            false
        }
        Statement::Set(Set::SingleAssignment { variable, .. }) => {
            // SET SESSION catalog.property = …
            let p = parts(variable);
            if let [catalog, _] = p.as_slice() {
                found.add(Kind::Catalog, std::slice::from_ref(catalog), session);
            }
            false
        }
        _ => true,
    }
}

fn grant_objects(objects: Option<&GrantObjects>, session: &Session, found: &mut Found) {
    let (kind, names) = match objects {
        Some(GrantObjects::Tables(n) | GrantObjects::Views(n)) => (Kind::Table, n),
        Some(GrantObjects::Schemas(n) | GrantObjects::Databases(n)) => (Kind::Schema, n),
        _ => return,
    };
    for n in names {
        found.add(kind, &parts(n), session);
    }
}

/// Walks a statement's queries: relations (minus CTE names), table functions, `TABLE(name)`.
struct Walker<'a, 'f> {
    session: &'a Session<'a>,
    found: &'f mut Found,
    ctes: HashSet<String>,
}

impl Visitor for Walker<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let p = parts(relation);
        let is_cte = matches!(p.as_slice(), [one] if self.ctes.contains(&one.to_lowercase()));
        if !is_cte {
            self.found.add(Kind::Table, &p, self.session);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        // TABLE(catalog.schema.function(…)): the function's schema is used
        if let TableFactor::TableFunction {
            expr: Expr::Function(f),
            ..
        } = factor
        {
            let mut p = parts(&f.name);
            if p.len() >= 2 {
                p.pop();
                self.found.add(Kind::Schema, &p, self.session);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        // a table argument of a table function: `input => TABLE(hive.s.t)`
        let Expr::Function(f) = expr else {
            return ControlFlow::Continue(());
        };
        let name = parts(&f.name);
        if let [word] = name.as_slice() {
            if word.eq_ignore_ascii_case("table") {
                if let FunctionArguments::List(list) = &f.args {
                    for arg in &list.args {
                        let (FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                        | FunctionArg::Named {
                            arg: FunctionArgExpr::Expr(e),
                            ..
                        }) = arg
                        else {
                            continue;
                        };
                        let p: Vec<String> = match e {
                            Expr::Identifier(i) => vec![i.value.clone()],
                            Expr::CompoundIdentifier(ids) => {
                                ids.iter().map(|i| i.value.clone()).collect()
                            }
                            _ => continue,
                        };
                        self.found.add(Kind::Table, &p, self.session);
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}
