//! Reads `multipart/form-data` bodies (RFC 7578, <https://www.rfc-editor.org/rfc/rfc7578>) as a
//! server does, strictly: fake servers use it to check uploads part by part and refuse a body a
//! real server could not read.

/// One part of a form.
#[derive(Clone, Debug, PartialEq)]
pub struct FormPart {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename` of its `Content-Disposition`, if any.
    pub filename: Option<String>,
    /// Its `Content-Type`, if given.
    pub content_type: Option<String>,
    /// Its bytes, exactly.
    pub bytes: Vec<u8>,
}

/// The parts of a form whose `content-type` header is `content_type`; an error saying what is
/// wrong when the header is not `multipart/form-data` with a boundary, or the body is not a
/// well-formed form.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<FormPart>, String> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or_default().trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!("content-type {kind:?} is not multipart/form-data"));
    }
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or("no boundary (1 to 70 characters) in the content-type")?;
    let delimiter = format!("--{boundary}");
    let mut rest = body
        .strip_prefix(delimiter.as_bytes())
        .ok_or("the body does not start with the boundary")?;
    let next = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return if parts.is_empty() {
                Err("the form has no parts".into())
            } else {
                Ok(parts)
            };
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("a boundary is not followed by CRLF")?;
        let end = find(rest, next.as_bytes()).ok_or("a part is not closed by the boundary")?;
        parts.push(part(&rest[..end])?);
        rest = &rest[end + next.len()..];
    }
}

/// A part: headers, a blank line, the bytes.
fn part(raw: &[u8]) -> Result<FormPart, String> {
    let split = find(raw, b"\r\n\r\n").ok_or("a part has no blank line after its headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "part headers are not UTF-8")?;
    let (mut name, mut filename, mut content_type) = (None, None, None);
    for line in head.split("\r\n") {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("part header {line:?} has no colon"))?;
        match key.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                let mut fields = value.split(';').map(str::trim);
                if fields.next() != Some("form-data") {
                    return Err(format!("part disposition {value:?} is not form-data"));
                }
                for field in fields {
                    let Some((k, v)) = field.split_once('=') else {
                        continue;
                    };
                    let v = v.trim().trim_matches('"').to_owned();
                    match k.trim() {
                        "name" => name = Some(v),
                        "filename" => filename = Some(v),
                        _ => {}
                    }
                }
            }
            "content-type" => content_type = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    Ok(FormPart {
        name: name.ok_or("a part has no name")?,
        filename,
        content_type,
        bytes: raw[split + 4..].to_vec(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_style_form_reads_back_part_by_part() {
        let body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\
Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n\x00\xff\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XyZ--\r\n";
        let parts = parse("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "file");
        assert_eq!(parts[0].filename.as_deref(), Some("a.pdf"));
        assert_eq!(parts[0].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(parts[0].bytes, b"%PDF-1.4\r\n\x00\xff");
        assert_eq!(
            (parts[1].name.as_str(), parts[1].bytes.as_slice()),
            ("note", &b"hi"[..])
        );
    }

    #[test]
    fn what_a_server_cannot_read_is_refused() {
        assert!(parse("application/pdf", b"%PDF").is_err());
        assert!(parse("multipart/form-data", b"--x\r\n").is_err());
        let unclosed = b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc";
        assert!(parse("multipart/form-data; boundary=b", unclosed).is_err());
        let nameless = b"--b\r\nContent-Type: text/plain\r\n\r\nabc\r\n--b--\r\n";
        assert!(parse("multipart/form-data; boundary=b", nameless).is_err());
    }
}
