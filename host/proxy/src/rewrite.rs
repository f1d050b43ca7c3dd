//! For coordinators that do not honour `X-Forwarded-*`: point `nextUri`, `infoUri` and
//! `partialCancelUri` of a JSON answer back at Sluice.
use bytes::Bytes;

const URI_FIELDS: &[&str] = &["nextUri", "infoUri", "partialCancelUri"];

/// Rewrite the scheme and authority of the URI fields in `body` to `external_base`
/// (e.g. `http://gateway:8080`). Bodies that are not a JSON object come back unchanged.
pub fn rewrite_uris(body: &Bytes, external_base: &str) -> Bytes {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body) else {
        return body.clone();
    };
    let mut changed = false;
    for field in URI_FIELDS {
        if let Some(serde_json::Value::String(uri)) = map.get_mut(*field) {
            if let Some(rewritten) = rebase(uri, external_base) {
                *uri = rewritten;
                changed = true;
            }
        }
    }
    if !changed {
        return body.clone();
    }
    serde_json::to_vec(&map)
        .map(Bytes::from)
        .unwrap_or_else(|_| body.clone())
}

fn rebase(uri: &str, base: &str) -> Option<String> {
    let (_, rest) = uri.split_once("://")?;
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    Some(format!("{}{}", base.trim_end_matches('/'), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_three_uri_fields_only() {
        let body = Bytes::from(
            r#"{"id":"1_2_3_x","infoUri":"http://10.0.0.7:8080/ui/query.html?1_2_3_x","nextUri":"http://10.0.0.7:8080/v1/statement/queued/1_2_3_x/y/1","partialCancelUri":"http://10.0.0.7:8080/v1/statement/executing/partialCancel/1_2_3_x/0/y/1","other":"http://10.0.0.7:8080/keep"}"#,
        );
        let out = rewrite_uris(&body, "https://gw.example:8443");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["nextUri"],
            "https://gw.example:8443/v1/statement/queued/1_2_3_x/y/1"
        );
        assert_eq!(
            v["infoUri"],
            "https://gw.example:8443/ui/query.html?1_2_3_x"
        );
        assert_eq!(
            v["partialCancelUri"],
            "https://gw.example:8443/v1/statement/executing/partialCancel/1_2_3_x/0/y/1"
        );
        assert_eq!(v["other"], "http://10.0.0.7:8080/keep");
        assert_eq!(v["id"], "1_2_3_x");
    }

    #[test]
    fn non_json_and_uri_free_bodies_are_untouched() {
        let text = Bytes::from_static(b"not json");
        assert_eq!(rewrite_uris(&text, "http://gw"), text);
        let json = Bytes::from_static(br#"{"id":"x"}"#);
        assert_eq!(rewrite_uris(&json, "http://gw"), json);
    }
}
