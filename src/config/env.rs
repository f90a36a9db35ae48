//! Environment layering for the controller config.

use super::{ControllerConfig, Environment};
use crate::policy::diagnostic::Diagnostic;
use crate::policy::source::DocumentText;
use serde_json::Value;
use std::path::Path;

/// Top-level config keys that `VEER_*` variables may set.
const LAYERED_KEYS: [&str; 6] = ["clusterId", "vantage", "policies", "admin", "coordination", "providers"];

/// Replaces `${NAME}` in the document with the variable's value; an unset
/// variable is an error at its position; `${NAME:-default}` gives a default.
/// `$${` is a literal `${`.
pub fn expand_variables(path: &Path, doc: &DocumentText, env: &Environment) -> Result<DocumentText, Vec<Diagnostic>> {
    let mut out = String::with_capacity(doc.text.len());
    let mut errors = Vec::new();
    for (index, line) in doc.text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            if rest[..start].ends_with('$') {
                out.push_str(&rest[..start - 1]);
                out.push_str("${");
                rest = &rest[start + 2..];
                continue;
            }
            out.push_str(&rest[..start]);
            let Some(len) = rest[start + 2..].find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let expression = &rest[start + 2..start + 2 + len];
            let (name, fallback) = match expression.split_once(":-") {
                Some((name, fallback)) => (name, Some(fallback)),
                None => (expression, None),
            };
            match env.get(name).filter(|v| !v.is_empty()).map(String::as_str).or(fallback) {
                Some(value) => out.push_str(value),
                None => errors.push(Diagnostic {
                    line: index as u64 + 1,
                    column: (line.len() - rest.len() + start) as u64 + 1,
                    ..Diagnostic::error_in_file(path, format!("environment variable `{name}` is not set"))
                }),
            }
            rest = &rest[start + 2 + len + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() { Ok(DocumentText { text: out, first_line: doc.first_line }) } else { Err(errors) }
}

/// Converts `TOKEN_FILE` to `tokenFile`.
fn camel_case(segment: &str) -> String {
    let mut out = String::new();
    for (i, word) in segment.split('_').filter(|w| !w.is_empty()).enumerate() {
        let lower = word.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    out
}

fn normalise(key: &str) -> String {
    key.to_ascii_lowercase().replace('-', "_")
}

/// Layers `VEER_*` variables over the parsed config. Variables whose first level
/// is not a config key (`VEER_SERVER`, `VEER_TOKEN`, …) are left to the CLI.
pub fn apply_environment(
    path: &Path,
    config: ControllerConfig,
    env: &Environment,
) -> Result<ControllerConfig, Vec<Diagnostic>> {
    let mut tree = serde_json::to_value(&config).expect("config serializes");
    let mut touched = Vec::new();
    for (name, value) in env.range("VEER_".to_string()..).take_while(|(k, _)| k.starts_with("VEER_")) {
        let segments: Vec<&str> = name["VEER_".len()..].split("__").collect();
        if !LAYERED_KEYS.contains(&camel_case(segments[0]).as_str()) {
            continue;
        }
        let parsed: Value = serde_saphyr::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
        set_path(&mut tree, &segments, parsed);
        touched.push(name.clone());
    }
    if touched.is_empty() {
        return Ok(config);
    }
    serde_json::from_value(tree).map_err(|e| {
        vec![Diagnostic::error_in_file(path, format!("invalid value from environment ({}): {e}", touched.join(", ")))]
    })
}

fn set_path(tree: &mut Value, segments: &[&str], value: Value) {
    let mut node = tree;
    for (depth, segment) in segments.iter().enumerate() {
        let in_providers = depth == 1 && segments[0].eq_ignore_ascii_case("PROVIDERS");
        let Value::Object(map) = node else { return };
        let key = if in_providers {
            map.keys().find(|k| normalise(k) == normalise(segment)).cloned().unwrap_or_else(|| normalise(segment))
        } else {
            camel_case(segment)
        };
        if depth + 1 == segments.len() {
            map.insert(key, value);
            return;
        }
        node = map.entry(key).or_insert_with(|| Value::Object(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_cases_segments() {
        assert_eq!(camel_case("TOKEN_FILE"), "tokenFile");
        assert_eq!(camel_case("LISTEN"), "listen");
        assert_eq!(camel_case("CLUSTER_ID"), "clusterId");
    }

    #[test]
    fn expands_variables_and_reports_unset_ones_at_their_column() {
        let doc =
            DocumentText { text: "a: ${X}\nb: x-${MISSING}\nc: $${LIT}\nd: ${MISSING:-dflt}\n".into(), first_line: 1 };
        let lookup: Environment = [("X".to_string(), "hello".to_string())].into();
        let err = expand_variables(Path::new("f.yaml"), &doc, &lookup).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!((err[0].line, err[0].column), (2, 6));
        let ok = expand_variables(
            Path::new("f.yaml"),
            &DocumentText { text: "a: ${X}\nc: $${LIT}\n".into(), first_line: 1 },
            &lookup,
        )
        .unwrap();
        assert_eq!(ok.text, "a: hello\nc: ${LIT}\n");
    }
}
