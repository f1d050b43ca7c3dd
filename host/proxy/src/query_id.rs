//! Finding the Trino query id in a request, in every form a Trino client or the web UI uses.
//!
//! | form | example |
//! | --- | --- |
//! | statement protocol | `/v1/statement/{queued,scheduled,executing}/{id}/{slug}/{token}` |
//! | partial cancel | `/v1/statement/executing/partialCancel/{id}/{stage}/{slug}/{token}` |
//! | older statement form | `/v1/statement/{id}/{token}` |
//! | query resource | `/v1/query/{id}`, `/v1/query/{id}?pretty` |
//! | UI API | `/ui/api/query/{id}`, `/ui/api/query/{id}/killed`, `/ui/api/query/{id}/preempted` |
//! | UI pages | `/ui/query.html?{id}`, `/ui/troubleshooting?queryId={id}` |
//! | login redirect | any of the above URL-encoded in a `redirect` / `redirectPath` parameter |
//!
//! Every candidate is validated with [`is_query_id`]; look-alikes carry no id.

const STATEMENT: &str = "/v1/statement";

/// Trino's query id format `\d+_\d+_\d+_\w+` (for example `20240101_120000_00001_abcde`).
pub fn is_query_id(s: &str) -> bool {
    let mut parts = s.splitn(4, '_');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next())
        && digits(parts.next())
        && digits(parts.next())
        && parts.next().is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// Whether `path` is `prefix` or below it (`/ui` matches `/ui` and `/ui/x`, not `/uix`).
pub fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The query id carried by a request path and query string, if any. `statement_prefixes` are
/// extra prefixes treated like `/v1/statement`.
pub fn extract(path: &str, query: Option<&str>, statement_prefixes: &[String]) -> Option<String> {
    extract_depth(path, query, statement_prefixes, 0)
}

fn extract_depth(
    path: &str,
    query: Option<&str>,
    statement_prefixes: &[String],
    depth: u8,
) -> Option<String> {
    let valid = |s: &str| is_query_id(s).then(|| s.to_string());
    let segments_after = |prefix: &str| -> Vec<&str> {
        path[prefix.trim_end_matches('/').len()..]
            .split('/')
            .filter(|s| !s.is_empty())
            .collect()
    };

    let statement = std::iter::once(STATEMENT)
        .chain(statement_prefixes.iter().map(String::as_str))
        .find(|p| under(path, p));
    if let Some(prefix) = statement {
        let seg = segments_after(prefix);
        let id = match seg.as_slice() {
            ["executing", "partialCancel", id, ..] => valid(id),
            ["queued" | "scheduled" | "executing", id, ..] => valid(id),
            [id, ..] => valid(id),
            [] => None,
        };
        if id.is_some() {
            return id;
        }
    } else if under(path, "/v1/query") {
        if let Some(id) = segments_after("/v1/query").first().and_then(|s| valid(s)) {
            return Some(id);
        }
    } else if under(path, "/ui/api/query") {
        let seg = segments_after("/ui/api/query");
        let id = match seg.as_slice() {
            [id] | [id, "killed" | "preempted"] => valid(id),
            _ => None,
        };
        if id.is_some() {
            return id;
        }
    } else if path == "/ui/query.html" {
        // the whole query string is the id: /ui/query.html?20240101_000000_00001_abcde
        if let Some(id) = query.and_then(|q| q.split('&').next()).and_then(valid) {
            return Some(id);
        }
    }

    let query = query?;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "queryId" if path == "/ui/troubleshooting" || under(path, "/ui/troubleshooting") => {
                if let Some(id) = valid(&value) {
                    return Some(id);
                }
            }
            "redirect" | "redirectPath" | "redirectUrl" if depth == 0 => {
                // a URL-encoded path (or absolute URL) of one of the forms above
                let target = strip_origin(&value);
                let (p, q) = match target.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (target, None),
                };
                if let Some(id) = extract_depth(p, q, statement_prefixes, depth + 1) {
                    return Some(id);
                }
            }
            _ => {}
        }
    }
    None
}

/// `https://host:8080/ui/x?y` → `/ui/x?y`; a bare path is returned as it is.
fn strip_origin(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "20240101_120000_00042_abcde";

    fn ex(uri: &str) -> Option<String> {
        ex_with(uri, &[])
    }

    fn ex_with(uri: &str, prefixes: &[&str]) -> Option<String> {
        let prefixes: Vec<String> = prefixes.iter().map(|s| s.to_string()).collect();
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        extract(path, query, &prefixes)
    }

    #[test]
    fn id_format() {
        assert!(is_query_id(ID));
        assert!(is_query_id("0_1_2_a"));
        assert!(is_query_id("1_2_3_a_b"));
        for bad in [
            "",
            "myOtherThing",
            "1_2_3",
            "1_2_3_",
            "a_2_3_x",
            "1__3_x",
            "1_2_3_x-y",
            "1_2_3_x/y",
        ] {
            assert!(!is_query_id(bad), "{bad}");
        }
    }

    #[test]
    fn statement_protocol_forms() {
        for state in ["queued", "scheduled", "executing"] {
            assert_eq!(
                ex(&format!("/v1/statement/{state}/{ID}/y1234/1")).as_deref(),
                Some(ID)
            );
        }
        assert_eq!(
            ex(&format!(
                "/v1/statement/executing/partialCancel/{ID}/0/y1234/3"
            ))
            .as_deref(),
            Some(ID)
        );
        assert_eq!(ex(&format!("/v1/statement/{ID}/2")).as_deref(), Some(ID));
        assert_eq!(ex("/v1/statement"), None);
        assert_eq!(ex("/v1/statement/queued/notanid/y/1"), None);
    }

    #[test]
    fn configured_statement_prefixes() {
        let uri = format!("/custom/statement/queued/{ID}/y/1");
        assert_eq!(ex(&uri), None);
        assert_eq!(ex_with(&uri, &["/custom/statement"]).as_deref(), Some(ID));
    }

    #[test]
    fn query_resource_forms() {
        assert_eq!(ex(&format!("/v1/query/{ID}")).as_deref(), Some(ID));
        assert_eq!(ex(&format!("/v1/query/{ID}?pretty")).as_deref(), Some(ID));
        assert_eq!(ex("/v1/query"), None);
        assert_eq!(ex("/v1/queryx/0_1_2_a"), None);
    }

    #[test]
    fn ui_forms() {
        assert_eq!(ex(&format!("/ui/api/query/{ID}")).as_deref(), Some(ID));
        assert_eq!(
            ex(&format!("/ui/api/query/{ID}/killed")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            ex(&format!("/ui/api/query/{ID}/preempted")).as_deref(),
            Some(ID)
        );
        assert_eq!(ex(&format!("/ui/query.html?{ID}")).as_deref(), Some(ID));
        assert_eq!(
            ex(&format!("/ui/troubleshooting?queryId={ID}")).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn encoded_redirect_parameter() {
        assert_eq!(
            ex(&format!("/login?redirect=%2Fui%2Fapi%2Fquery%2F{ID}")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            ex(&format!("/ui/login?redirectPath=%2Fui%2Fquery.html%3F{ID}")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            ex(&format!(
                "/oauth2/token?redirectUrl=https%3A%2F%2Fgw%3A8443%2Fv1%2Fquery%2F{ID}"
            ))
            .as_deref(),
            Some(ID)
        );
        assert_eq!(ex("/login?redirect=%2Fui%2F"), None);
    }

    #[test]
    fn look_alikes_carry_no_id() {
        assert_eq!(ex("/ui/api/query/myOtherThing"), None);
        assert_eq!(ex("/ui/?id=0_1_2_a"), None);
        assert_eq!(ex(&format!("/ui/api/query/{ID}/something")), None);
        assert_eq!(ex(&format!("/ui/api/query/{ID}x-y")), None);
        assert_eq!(ex(&format!("/ui/other?queryId={ID}")), None);
        assert_eq!(ex(&format!("/ui/query.html?x={ID}")), None);
        assert_eq!(ex("/v1/info"), None);
    }

    #[test]
    fn prefix_matching_respects_segments() {
        assert!(under("/ui", "/ui"));
        assert!(under("/ui/x", "/ui"));
        assert!(under("/ui/x", "/ui/"));
        assert!(!under("/uix", "/ui"));
    }
}
