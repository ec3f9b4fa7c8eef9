//! Files the repository ships that the binary generates, checked to be
//! what the binary makes now: the JSON Schema of descriptions
//! (`schema/image-composer.schema.json`, installed for editors) and the
//! README's picture of the embedded example's plan
//! (`docs/embedded-plan.svg`). `UPDATE_EXPECT=1` rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use support::repo_root;

/// Runs the binary in the repository's top directory (the plan names its
/// inputs relative to it) and returns its stdout.
fn composer_at_top(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_image-composer"))
        .args(args)
        .current_dir(repo_root())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running image-composer");
    assert!(
        out.status.success(),
        "image-composer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Compares `made` with the shipped file `rel`, or rewrites it.
fn check_shipped(rel: &str, made: &str) {
    let path = repo_root().join(rel);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, made).expect("writing the shipped file");
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == made,
        "{rel} is not what the binary makes now; run UPDATE_EXPECT=1 cargo test --test shipped_files and commit it"
    );
}

#[test]
fn the_shipped_schema_is_the_binarys() {
    let schema = composer_at_top(&["schema"]);
    let value: serde_json::Value = serde_json::from_str(&schema).expect("the schema is JSON");
    assert_eq!(value["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(
        value["properties"]["image"]["properties"]["table"]["anyOf"][0]["enum"][0],
        "gpt"
    );
    check_shipped("schema/image-composer.schema.json", &schema);
}

#[test]
fn the_readme_picture_is_the_embedded_examples_plan() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let svg = dir.path().join("plan.svg");
    let text = composer_at_top(&[
        "-q",
        "plan",
        "examples/embedded/board.yaml",
        "--svg",
        svg.to_str().expect("a UTF-8 path"),
    ]);
    assert!(text.contains("rootA"), "plan text still printed: {text}");
    let made = std::fs::read_to_string(&svg).expect("the picture was written");
    // Written via a staging directory, renamed into place: nothing left.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listing the scratch directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(left, [Path::new("plan.svg").as_os_str()]);
    check_shipped("docs/embedded-plan.svg", &made);
}
