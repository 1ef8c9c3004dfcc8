//! The repository's own files, read by the parity tests that hold them to the code:
//! `template.yaml`, `docs/openapi.yaml`, the README.

use std::path::PathBuf;

/// A path inside the repository (the workspace root, one level above `shared/`).
pub fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

pub fn load_yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// `template.yaml`, parsed.
pub fn load_template() -> serde_yaml::Value {
    load_yaml("template.yaml")
}
