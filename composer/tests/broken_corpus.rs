//! The broken-description corpus: every `tests/broken/NN-name.yaml` is a
//! realistic mistake, and `NN-name.expected` holds the exact diagnostics a
//! user sees for it (paths relative to the repository root).
//!
//! `BLESS=1 cargo test --test broken_corpus` rewrites the `.expected` files
//! from the current output; review the diff before committing it.
//!
//! Inputs the cases name live in `tests/broken/inputs/` (passed as
//! `BINARIES_DIR`, `TARGET_DIR` and `KERNEL=Image`), layers in `tests/broken/layers/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use composer::compose::{self, Error, Request};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in a workspace")
        .to_path_buf()
}

/// The diagnostics for one description, as a user sees them, with the
/// repository root stripped from paths: what `image-composer validate`
/// reports (the loader, the contents' checks and the planner).
fn render(yaml: &Path, root: &Path) -> String {
    let corpus = root.join("tests/broken");
    let request = Request {
        config: yaml.to_path_buf(),
        vars: BTreeMap::from([
            (
                "BINARIES_DIR".to_string(),
                corpus.join("inputs").display().to_string(),
            ),
            (
                "TARGET_DIR".to_string(),
                corpus.join("inputs/rootfs").display().to_string(),
            ),
            ("KERNEL".to_string(), "Image".to_string()),
        ]),
        input_dirs: vec![],
        layer_dirs: vec![corpus.join("layers")],
        reference: None,
    };
    let text = match compose::validate(&request) {
        Ok(()) => String::from("(no diagnostics: the description is valid)\n"),
        Err(Error::Input(diags)) => format!("{diags}\n"),
        Err(Error::Build(err)) => format!("error: {err:#}\n"),
    };
    text.replace(&format!("{}/", root.display()), "")
}

#[test]
fn broken_descriptions_give_the_expected_diagnostics() {
    let root = repo_root();
    let dir = root.join("tests/broken");
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 40, "the corpus shrank to {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let actual = render(case, &root);
        let expected_path = case.with_extension("expected");
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !actual.starts_with("(no diagnostics"),
            "{name}: a broken description loaded without a problem"
        );
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "--- {name}: expected ({})\n{expected}+++ {name}: actual\n{actual}",
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (BLESS=1 rewrites the .expected files):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
