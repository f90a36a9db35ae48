//! TXT record content as the PowerDNS API carries it: zone-file presentation
//! format, one or more quoted character strings (`"owner=a;gen=1"`), with `\"`,
//! `\\` and `\DDD` escapes. veer's ownership record is one string, but a record
//! written by someone else may be split into several, which DNS concatenates.

/// Quotes `text` as one TXT character string. PowerDNS rejects unquoted TXT
/// content with 422, and an unescaped quote would end the string early.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Reads presentation-format TXT content back into its text: the character
/// strings concatenated, escapes resolved. Content that is not quoted at all (as
/// some tools store it) is taken literally, so it is still seen and never lost.
pub(crate) fn unquote(content: &str) -> String {
    let content = content.trim();
    if !content.starts_with('"') {
        return content.to_string();
    }
    let mut bytes = Vec::with_capacity(content.len());
    let mut chars = content.chars().peekable();
    let mut inside = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => inside = !inside,
            '\\' if inside => {
                let digits: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).take(3).collect();
                if digits.len() == 3 {
                    // A \DDD escape is one octet; out-of-range values are kept as text.
                    match digits.parse::<u8>() {
                        Ok(b) => bytes.push(b),
                        Err(_) => bytes.extend_from_slice(format!("\\{digits}").as_bytes()),
                    }
                } else if !digits.is_empty() {
                    bytes.extend_from_slice(digits.as_bytes());
                } else if let Some(next) = chars.next() {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
                }
            }
            c if inside => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            // Whitespace between character strings.
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_quotes_and_backslashes() {
        for text in ["owner=a;gen=1;epoch=2;policy=p", "say \"hi\"", "back\\slash", ""] {
            assert_eq!(unquote(&quote(text)), text);
        }
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn several_character_strings_are_concatenated() {
        assert_eq!(unquote("\"owner=a;\" \"gen=1\""), "owner=a;gen=1");
    }

    #[test]
    fn decimal_escapes_are_resolved_and_bare_content_is_kept() {
        assert_eq!(unquote("\"a\\059b\""), "a;b");
        assert_eq!(unquote("hello world"), "hello world");
    }
}
