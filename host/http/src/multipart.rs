//! `multipart/form-data` bodies read whole, as the admin API's uploads send them: the named parts
//! and their bytes, or why not. The caller names the parts it accepts; any other part, a part
//! without a name, or a part sent twice is refused rather than ignored.
use bytes::Bytes;

/// Why a form could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// The content type names no usable boundary.
    #[error("multipart: {0}")]
    Boundary(multer::Error),
    /// The body is not a well-formed form.
    #[error("multipart: {0}")]
    Malformed(multer::Error),
    /// A part the caller does not accept.
    #[error("unexpected multipart part {0:?}: send {1}")]
    Unexpected(Option<String>, String),
    /// The same part twice.
    #[error("multipart part '{0}' sent twice")]
    Twice(String),
}

/// The boundary a `multipart/form-data` content type names.
pub fn boundary(content_type: &str) -> Result<String, FormError> {
    multer::parse_boundary(content_type).map_err(FormError::Boundary)
}

/// The parts of `body` (a whole `multipart/form-data` body with `boundary`), in body order; every
/// part's name is one of `names`.
pub async fn parts(
    body: Bytes,
    boundary: String,
    names: &[&str],
) -> Result<Vec<(String, Bytes)>, FormError> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut parts: Vec<(String, Bytes)> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(FormError::Malformed)? {
        let name = match field.name() {
            Some(n) if names.contains(&n) => n.to_string(),
            other => {
                let expected = names
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(" and ");
                return Err(FormError::Unexpected(other.map(str::to_string), expected));
            }
        };
        if parts.iter().any(|(n, _)| *n == name) {
            return Err(FormError::Twice(name));
        }
        let bytes = field.bytes().await.map_err(FormError::Malformed)?;
        parts.push((name, bytes));
    }
    Ok(parts)
}

/// A `multipart/form-data` body with the parts `module` (the component) and `config` (YAML or
/// JSON), as `PUT /api/v1/filters/{slot}` takes it: returns (content type, body). The boundary is
/// 128 random bits, so no module contains it but by a 2^-128 chance.
pub fn upload(module: &[u8], config: &str) -> (String, Bytes) {
    let boundary = format!("sluice-{:032x}", rand::random::<u128>());
    let mut body = Vec::with_capacity(module.len() + config.len() + 512);
    body.extend_from_slice(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"module\"; filename=\"module.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
    ).as_bytes());
    body.extend_from_slice(module);
    body.extend_from_slice(format!(
        "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"config\"\r\nContent-Type: application/yaml\r\n\r\n"
    ).as_bytes());
    body.extend_from_slice(config.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&str, &[u8])]) -> Bytes {
        let mut body = Vec::new();
        for (name, bytes) in parts {
            body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(b"\"\r\n\r\n");
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body.into()
    }

    fn read(body: Bytes) -> Result<Vec<(String, Bytes)>, FormError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(parts(body, "XyZ".into(), &["module", "config"]))
    }

    #[test]
    fn named_parts_come_back_with_their_bytes() {
        let got = read(form(&[("module", b"\0asm\r\n--XyY"), ("config", b"a: 1")])).unwrap();
        assert_eq!(
            got[0],
            ("module".into(), Bytes::from_static(b"\0asm\r\n--XyY"))
        );
        assert_eq!(got[1], ("config".into(), Bytes::from_static(b"a: 1")));
    }

    #[test]
    fn an_upload_reads_back_as_module_and_config() {
        let module = b"\0asm\x0d\0\x01\0binary\r\n--not-a-boundary";
        let (ct, body) = upload(module, "window_seconds: 5\n");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt
            .block_on(parts(body, boundary(&ct).unwrap(), &["module", "config"]))
            .unwrap();
        assert_eq!(got[0], ("module".into(), Bytes::copy_from_slice(module)));
        assert_eq!(
            got[1],
            ("config".into(), Bytes::from_static(b"window_seconds: 5\n"))
        );
    }

    #[test]
    fn unknown_repeated_and_broken_parts_are_refused() {
        let err = read(form(&[("other", b"x")])).unwrap_err().to_string();
        assert_eq!(
            err,
            "unexpected multipart part Some(\"other\"): send 'module' and 'config'"
        );
        let err = read(form(&[("module", b"a"), ("module", b"b")])).unwrap_err();
        assert!(matches!(err, FormError::Twice(n) if n == "module"));
        let err = read(Bytes::from_static(b"--XyZ\r\nbroken")).unwrap_err();
        assert!(matches!(err, FormError::Malformed(_)), "{err}");
        assert!(boundary("text/plain").is_err());
    }
}
