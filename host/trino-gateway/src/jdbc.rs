//! `dataStore.jdbcUrl` (with `user` and `password`) as a database URL Sluice opens.
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// `jdbc:postgresql://host:port/db?…` or `jdbc:mysql://…` / `jdbc:mariadb://…` as
/// `postgres://user:password@host:port/db` or `mysql://…`. The JDBC parameters are dropped
/// (they are the Java driver's) except where the other driver reads the same one. `password` is
/// as it goes into the URL: [`encode`]d, or an environment reference left for later.
pub fn database_url(
    jdbc: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<String, String> {
    let rest = jdbc.strip_prefix("jdbc:").ok_or_else(|| {
        format!("'{jdbc}' is not a JDBC URL (jdbc:postgresql://… or jdbc:mysql://…)")
    })?;
    let (scheme, tail) = rest
        .split_once("://")
        .ok_or_else(|| format!("'{jdbc}' has no //host"))?;
    let scheme = match scheme {
        "postgresql" => "postgres",
        "mysql" | "mariadb" => "mysql",
        other => {
            return Err(format!(
                "'{other}': Sluice reads Trino Gateway's PostgreSQL or MySQL/MariaDB database"
            ))
        }
    };
    let (location, params) = tail.split_once('?').unwrap_or((tail, ""));
    let (host, db) = location.split_once('/').unwrap_or((location, ""));
    if host.is_empty() || db.is_empty() {
        return Err(format!("'{jdbc}' names no host or no database"));
    }
    let credentials = match (
        user.filter(|u| !u.is_empty()),
        password.filter(|p| !p.is_empty()),
    ) {
        (Some(u), Some(p)) => format!("{}:{p}@", encode(u)),
        (Some(u), None) => format!("{}@", encode(u)),
        (None, Some(p)) => format!(":{p}@"),
        (None, None) => String::new(),
    };
    // the one parameter both drivers read alike
    let kept: Vec<&str> = params
        .split('&')
        .filter(|p| scheme == "postgres" && p.starts_with("sslmode="))
        .collect();
    let query = match kept.is_empty() {
        true => String::new(),
        false => format!("?{}", kept.join("&")),
    };
    Ok(format!("{scheme}://{credentials}{host}/{db}{query}"))
}

/// `s` percent-encoded for the user or password of a URL.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_urls_become_database_urls() {
        assert_eq!(
            database_url(
                "jdbc:postgresql://pg:5432/gateway?sslmode=require&ApplicationName=x",
                Some("tg"),
                Some(&encode("p@ss/w"))
            )
            .unwrap(),
            "postgres://tg:p%40ss%2Fw@pg:5432/gateway?sslmode=require"
        );
        assert_eq!(
            database_url(
                "jdbc:mysql://db:3306/gateway?useSSL=false",
                Some("root"),
                None
            )
            .unwrap(),
            "mysql://root@db:3306/gateway"
        );
        assert!(database_url("jdbc:oracle:thin:@h:1521/x", None, None).is_err());
        assert!(database_url("postgres://h/db", None, None).is_err());
        assert!(database_url("jdbc:postgresql://h", None, None).is_err());
    }
}
