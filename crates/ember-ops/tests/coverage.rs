//! A new op cannot be added without joining the gradient-check suite: every custom op in
//! `src/` must be named `"ember.<op>"`, and every such name that is not a backward kernel
//! (`*_backward`, `*_grad`: checked through their forward op) must appear in a
//! `check("<name>", ...)` call in `tests/gradcheck.rs`.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
}

/// The `"ember.*"` string literals of a source file.
fn op_names(source: &str) -> Vec<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("ember.") && !s.contains(' '))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_op_is_in_the_gradient_check_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let suite = std::fs::read_to_string(root.join("tests/gradcheck.rs")).unwrap();

    let mut ops = Vec::new();
    for (path, source) in &files {
        let impls = source.matches("impl CustomOp").count();
        let names = op_names(source);
        assert!(
            names.len() >= impls,
            "{path}: {impls} custom ops but only {} \"ember.*\" names",
            names.len()
        );
        ops.extend(names);
    }
    ops.sort();
    ops.dedup();
    assert!(ops.len() >= 6, "found only {ops:?}: is the scan broken?");
    let forward_ops: Vec<&String> = ops
        .iter()
        .filter(|n| !n.ends_with("_backward") && !n.ends_with("_grad"))
        .collect();
    let missing: Vec<&&String> = forward_ops
        .iter()
        .filter(|n| !suite.contains(&format!("check(\"{n}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "ops without a gradient check in tests/gradcheck.rs: {missing:?}"
    );
}
