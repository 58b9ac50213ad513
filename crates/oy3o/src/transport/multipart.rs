//! `multipart/form-data` bodies with one file part, written by hand: the one upload that needs
//! it (Copilot's documents) does not justify reqwest's `multipart` feature and its build time.
//!
//! The format is RFC 7578 (<https://www.rfc-editor.org/rfc/rfc7578>); the file name is escaped
//! as browsers do (`"` → `%22`, CR → `%0D`, LF → `%0A`, the WHATWG encoding algorithm:
//! <https://html.spec.whatwg.org/multipage/form-control-infrastructure.html#multipart-form-data>).

/// A form body and the `content-type` header that goes with it.
#[derive(Debug)]
pub struct Form {
    /// `multipart/form-data; boundary=...`.
    pub content_type: String,
    /// The whole body.
    pub body: Vec<u8>,
}

/// A form of one file part named `field`, with its file name and media type.
///
/// ```
/// let form = oy3o::transport::multipart::file("file", "a.txt", "text/plain", b"hi");
/// assert!(form.content_type.starts_with("multipart/form-data; boundary="));
/// ```
pub fn file(field: &str, filename: &str, mime: &str, bytes: &[u8]) -> Form {
    let boundary = boundary_for(bytes);
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n\
             Content-Type: {mime}\r\n\r\n",
            escape(field),
            escape(filename)
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Form {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
    }
}

/// A random boundary that does not occur in `bytes` (RFC 7578 §4.1: the sender must choose
/// one that is not in the data).
fn boundary_for(bytes: &[u8]) -> String {
    let mut attempt = 0u64;
    loop {
        let mut random = [0u8; 12];
        if getrandom::fill(&mut random).is_err() {
            // No OS randomness: a counter still gives a fresh one, checked like the rest.
            random[..8].copy_from_slice(&attempt.to_le_bytes());
        }
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let boundary = format!("----oy3oFormBoundary{hex}");
        if memchr::memmem::find(bytes, boundary.as_bytes()).is_none() {
            return boundary;
        }
        attempt += 1;
    }
}

/// A name in a `Content-Disposition` quoted string.
fn escape(name: &str) -> String {
    name.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_part_carries_its_name_type_and_exact_bytes() {
        let bytes = b"%PDF-1.4\r\n--not a boundary\r\n\x00\xff";
        let form = file("file", "report \"q3\".pdf", "application/pdf", bytes);
        let boundary = form
            .content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"report %22q3%22.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        assert!(form.body.starts_with(head.as_bytes()));
        assert!(form.body.ends_with(tail.as_bytes()));
        assert_eq!(&form.body[head.len()..form.body.len() - tail.len()], bytes);
    }

    #[test]
    fn the_boundary_never_occurs_in_the_data_and_differs_each_time() {
        let a = boundary_for(b"");
        let b = boundary_for(a.as_bytes());
        assert_ne!(a, b);
        assert!(!a.contains(&b));
    }
}
