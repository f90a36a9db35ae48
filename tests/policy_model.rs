//! The policy model: examples round-trip, the README reference matches the
//! parser, and the parser never panics on arbitrary input.

use proptest::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use veer::policy::reference::{CONFIG_FIELDS, DRILL_FIELDS, Field, POLICY_FIELDS};
use veer::policy::source::{DocumentText, parse_document};
use veer::policy::{FailoverPolicy, load, load_text, policy_hash};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_example_parses_validates_and_round_trips_to_an_equivalent_model() {
    let loaded = load(&[root().join("policies/examples")], None);
    assert!(loaded.is_valid(), "{:#?}", loaded.diagnostics);
    assert!(loaded.policies.len() >= 4, "expected at least four example policies");
    for example in &loaded.policies {
        let yaml = serde_saphyr::to_string(&example.policy).expect("serializes");
        let doc = DocumentText { text: yaml.clone(), first_line: 1 };
        let again: FailoverPolicy = parse_document(Path::new("round-trip.yaml"), &doc)
            .unwrap_or_else(|d| panic!("{}: re-serialized policy does not parse: {d}\n{yaml}", example.path.display()));
        assert_eq!(
            serde_json::to_value(&example.policy).unwrap(),
            serde_json::to_value(&again).unwrap(),
            "{} changed in a round trip",
            example.path.display()
        );
        assert_eq!(example.hash, policy_hash(&again), "the hash ignores formatting");
        let rechecked = load_text(
            Path::new("round-trip.yaml"),
            &yaml,
            loaded.configs.iter().find(|c| example.path.parent().is_some_and(|dir| dir.starts_with(c.base_dir()))),
        );
        assert!(rechecked.is_valid(), "{:#?}", rechecked.diagnostics);
    }
}

#[test]
fn the_policy_hash_changes_when_the_policy_does() {
    let loaded = load(&[root().join("policies/examples/local.yaml")], None);
    let mut policy = loaded.policies[0].policy.clone();
    let before = policy_hash(&policy);
    policy.spec.pools.value[0].endpoints.value[0].address.value = "127.0.0.99".into();
    assert_ne!(before, policy_hash(&policy));
}

/// Direct children of every documented mapping, keyed by the mapping's path as
/// the reference writes it (`spec.pools[]` → {name, endpoints}).
fn documented_children(fields: &[Field]) -> BTreeMap<String, BTreeSet<String>> {
    let mut tree: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for field in fields {
        let segments: Vec<&str> = field.path.split('.').collect();
        for depth in 0..segments.len() {
            if !segments[depth].starts_with('<') {
                let child = segments[depth].trim_end_matches("[]").to_string();
                tree.entry(segments[..depth].join(".")).or_default().insert(child);
            }
        }
    }
    tree
}

/// Navigates a JSON document along a documented path (`[]` → first element, `<name>` → first key).
fn node_at<'v>(value: &'v mut Value, path: &str) -> &'v mut Value {
    let mut node = value;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        if segment.starts_with('<') {
            let key = node.as_object().and_then(|m| m.keys().next().cloned()).expect("map has an entry");
            node = node.get_mut(&key).unwrap();
            continue;
        }
        let list = segment.ends_with("[]");
        node = node.get_mut(segment.trim_end_matches("[]")).unwrap_or_else(|| panic!("no `{segment}` in sample"));
        if list {
            node = node.get_mut(0).unwrap();
        }
    }
    node
}

/// The field names the parser accepts at `path`, read from its unknown-field error.
fn accepted_fields<T: serde::de::DeserializeOwned>(sample: &Value, path: &str) -> BTreeSet<String> {
    let mut probe = sample.clone();
    node_at(&mut probe, path).as_object_mut().expect("a mapping").insert("zzzUnknown".into(), Value::Bool(true));
    let error = serde_json::from_value::<T>(probe).err().expect("unknown field rejected").to_string();
    let expected = error.split_once("expected").map(|(_, rest)| rest).unwrap_or_else(|| panic!("{error}"));
    expected.split('`').skip(1).step_by(2).map(String::from).collect()
}

fn assert_reference_matches<T: serde::de::DeserializeOwned>(fields: &[Field], sample: Value) {
    for (parent, documented) in documented_children(fields) {
        let accepted = accepted_fields::<T>(&sample, &parent);
        assert_eq!(documented, accepted, "documented fields of `{parent}` differ from what the parser accepts");
    }
}

fn full_policy_sample() -> Value {
    let text = std::fs::read_to_string(root().join("tests/policies/full.yaml")).unwrap();
    let policy: FailoverPolicy = parse_document(Path::new("full.yaml"), &DocumentText { text, first_line: 1 }).unwrap();
    serde_json::to_value(policy).unwrap()
}

#[test]
fn the_policy_reference_lists_exactly_the_fields_the_parser_accepts() {
    assert_reference_matches::<FailoverPolicy>(POLICY_FIELDS, full_policy_sample());
}

#[test]
fn the_config_reference_lists_exactly_the_fields_the_parser_accepts() {
    let path = root().join("tests/policies/full-config.yaml");
    let loaded = veer::config::load(&path).unwrap_or_else(|d| panic!("{d:?}"));
    let sample = serde_json::to_value(&loaded.config).unwrap();
    assert_reference_matches::<veer::config::ControllerConfig>(CONFIG_FIELDS, sample);
}

#[test]
fn the_drill_reference_lists_exactly_the_fields_the_parser_accepts() {
    let text = std::fs::read_to_string(root().join("tests/policies/full-drill.yaml")).unwrap();
    let drill: veer::drill::Drill =
        parse_document(Path::new("full-drill.yaml"), &DocumentText { text, first_line: 1 }).unwrap();
    assert_reference_matches::<veer::drill::Drill>(DRILL_FIELDS, serde_json::to_value(drill).unwrap());
}

#[test]
fn the_readme_holds_the_generated_reference() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let begin = "<!-- reference:begin (generated by `veer reference`; a test keeps it in sync) -->\n";
    let end = "<!-- reference:end -->";
    let start = readme.find(begin).expect("README has the reference begin marker") + begin.len();
    let stop = readme[start..].find(end).expect("README has the reference end marker") + start;
    assert_eq!(
        &readme[start..stop],
        veer::policy::reference::markdown(),
        "README reference is stale: run `cargo run -- reference` and paste it between the markers"
    );
}

fn check_never_panics(text: &str) {
    let loaded = load_text(Path::new("fuzz.yaml"), text, None);
    for d in &loaded.diagnostics {
        assert!(!d.message.is_empty());
        let _ = d.to_string();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        check_never_panics(&text);
    }

    #[test]
    fn the_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_never_panics(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn the_parser_never_panics_on_mutated_policies(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[ -~\\n]{0,8}"), 1..6)
    ) {
        let mut text = std::fs::read_to_string(root().join("tests/policies/full.yaml")).unwrap();
        for (at, op, insert) in edits {
            let mut index = at.index(text.len().max(1));
            while !text.is_char_boundary(index) { index -= 1; }
            match op {
                0 => { text.insert_str(index, &insert); }
                1 => { let end = (index + insert.len()).min(text.len()); if text.is_char_boundary(end) { text.replace_range(index..end, ""); } }
                2 => { text.insert_str(index, "\n---\n"); }
                _ => { let end = (index + insert.len()).min(text.len()); if text.is_char_boundary(end) { text.replace_range(index..end, &insert); } }
            }
        }
        check_never_panics(&text);
    }
}
