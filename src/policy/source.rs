//! Reading YAML sources: split a file into documents, find each document's kind,
//! and turn parser errors into positioned [`Diagnostic`]s.
//!
//! Documents are split at `---` lines (YAML forbids document markers inside
//! scalars, so this is exact) and each is parsed on its own, padded with blank
//! lines so that positions stay those of the file. One broken document therefore
//! does not hide the errors of the others.

use super::diagnostic::Diagnostic;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_saphyr::{Location, MessageFormatter, Spanned};
use std::path::Path;

/// One document's text, padded so that its line numbers are the file's.
#[derive(Debug, Clone)]
pub struct DocumentText {
    /// Blank lines up to the document, then the document.
    pub text: String,
    /// 1-based line where the document starts.
    pub first_line: u64,
}

/// The document kinds veer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A FailoverPolicy (ARCHITECTURE.md §6).
    FailoverPolicy,
    /// The controller configuration, `veer.yaml`.
    ControllerConfig,
    /// A `veer simulate` scenario (ARCHITECTURE.md §7).
    Scenario,
    /// A game day's faults (`veer run --chaos`).
    Chaos,
    /// A failover or leader hand-off rehearsal (`veer drill`, ARCHITECTURE.md §7).
    Drill,
}

impl DocumentKind {
    const ALL: [(&'static str, DocumentKind); 5] = [
        ("FailoverPolicy", DocumentKind::FailoverPolicy),
        ("ControllerConfig", DocumentKind::ControllerConfig),
        ("Scenario", DocumentKind::Scenario),
        ("Chaos", DocumentKind::Chaos),
        ("Drill", DocumentKind::Drill),
    ];

    /// The kind's name as written in YAML.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).map_or("", |(n, _)| n)
    }
}

/// Splits `text` into documents at `---` marker lines; documents holding only
/// comments or blank lines are dropped.
pub fn split_documents(text: &str) -> Vec<DocumentText> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 0usize;
    let mut has_content = false;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let is_marker = line.starts_with("---") && line[3..].chars().next().is_none_or(|c| c.is_whitespace());
        if is_marker && index > 0 {
            if has_content {
                docs.push(DocumentText { text: std::mem::take(&mut current), first_line: start as u64 + 1 });
            }
            current = "\n".repeat(index);
            start = index;
            has_content = false;
        }
        let body = if is_marker { &line[3..] } else { line };
        let trimmed = body.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "..." {
            has_content = true;
        }
        current.push_str(line);
    }
    if has_content {
        docs.push(DocumentText { text: current, first_line: start as u64 + 1 });
    }
    docs
}

#[derive(Deserialize)]
struct Header {
    kind: Option<Spanned<String>>,
}

/// Finds a document's kind, or reports why it has none.
pub fn document_kind(path: &Path, doc: &DocumentText) -> Result<(DocumentKind, Location), Diagnostic> {
    let header: Header = serde_saphyr::from_str(&doc.text).map_err(|e| parse_error(path, doc, &e))?;
    let Some(kind) = header.kind else {
        return Err(Diagnostic {
            path: path.to_path_buf(),
            line: doc.first_line,
            column: 1,
            severity: super::diagnostic::Severity::Error,
            message: "missing field `kind` (expected FailoverPolicy or ControllerConfig)".into(),
        });
    };
    DocumentKind::ALL.iter().find(|(name, _)| *name == kind.value).map(|(_, k)| (*k, kind.referenced)).ok_or_else(
        || {
            let names: Vec<_> = DocumentKind::ALL.iter().map(|(n, _)| format!("`{n}`")).collect();
            Diagnostic::error_at(
                path,
                kind.referenced,
                format!("unknown kind `{}`, expected one of {}", kind.value, names.join(", ")),
            )
        },
    )
}

/// Parses one document as `T`.
pub fn parse_document<T: DeserializeOwned>(path: &Path, doc: &DocumentText) -> Result<T, Diagnostic> {
    serde_saphyr::from_str(&doc.text).map_err(|e| parse_error(path, doc, &e))
}

/// Turns a parser error into a positioned diagnostic.
fn parse_error(path: &Path, doc: &DocumentText, error: &serde_saphyr::Error) -> Diagnostic {
    let message = serde_saphyr::DefaultMessageFormatter.format_message(error).into_owned();
    let message = message.lines().next().unwrap_or("invalid YAML").trim();
    let Some(at) = error.location().filter(|at| at.line() > 0) else {
        return Diagnostic { line: doc.first_line, column: 1, ..Diagnostic::error_in_file(path, message) };
    };
    let (line, column) = (at.line(), at.column());
    let mut diagnostic =
        Diagnostic { line, column, ..Diagnostic::error_in_file(path, clarify(message, &doc.text, line, column)) };
    if message.starts_with("missing field") {
        (diagnostic.line, diagnostic.column) =
            if column <= 1 { (doc.first_line, 1) } else { enclosing_mapping(&doc.text, line, column) };
    }
    diagnostic
}

/// Rewrites the parser's terse messages into ones an operator can act on.
fn clarify(message: &str, text: &str, line: u64, column: u64) -> String {
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return format!("duplicate key `{key}`");
    }
    let found = || {
        let line_text = text.lines().nth(line as usize - 1).unwrap_or("");
        let token: String =
            line_text.chars().skip(column as usize - 1).take_while(|c| !matches!(c, ',' | '}' | ']' | '#')).collect();
        token.trim().to_string()
    };
    match message {
        "invalid u8" | "invalid u16" | "invalid u32" | "invalid u64" => {
            format!("expected a whole number of 0 or more, found `{}`", found())
        }
        "invalid i32" | "invalid i64" => format!("expected a whole number, found `{}`", found()),
        "invalid f32" | "invalid f64" => format!("expected a number, found `{}`", found()),
        _ => message.to_string(),
    }
}

/// Where the mapping that holds position (line, column) starts: the `{` of a
/// flow mapping on that line, or the parent key of a block mapping. Serde
/// reports a missing field where the mapping ended, which is rarely helpful.
fn enclosing_mapping(text: &str, line: u64, column: u64) -> (u64, u64) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(current) = lines.get(line as usize - 1) else { return (line, column) };
    let before: Vec<char> = current.chars().take(column as usize - 1).collect();
    let mut depth = 0i32;
    for (index, c) in before.iter().enumerate().rev() {
        match c {
            '}' => depth += 1,
            '{' if depth == 0 => return (line, index as u64 + 1),
            '{' => depth -= 1,
            _ => {}
        }
    }
    let indent = |l: &str| l.chars().take_while(|c| *c == ' ').count() as u64;
    for number in (1..line).rev() {
        let candidate = lines[number as usize - 1];
        let trimmed = candidate.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent(candidate) + 1 < column {
            return (number, indent(candidate) + 1);
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_markers_and_keeps_line_numbers() {
        let text = "# head\na: 1\n---\nb: 2\n--- \n# only a comment\n---\nc: 3\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].first_line, 1);
        assert_eq!(docs[1].first_line, 3);
        assert_eq!(docs[2].first_line, 7);
        assert_eq!(docs[2].text.lines().nth(7), Some("c: 3"));
    }

    #[test]
    fn a_leading_marker_is_part_of_the_first_document() {
        let docs = split_documents("---\nkind: X\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].first_line, 1);
    }

    #[test]
    fn dashes_inside_a_line_are_not_markers() {
        assert_eq!(split_documents("a: ---x\nb: 1\n----\n").len(), 1);
    }
}
