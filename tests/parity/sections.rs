//! `kind: loss` and `kind: mixed` manifests hold several sections, each with its own io (and
//! perhaps weights) file: either keyed by the io file (`dist.io.safetensors: {...}`) or by
//! name with an `io` field.

use serde_json::Value;

pub struct Section<'a> {
    pub name: String,
    pub io: String,
    pub spec: &'a Value,
}

const IO_SUFFIX: &str = ".io.safetensors";

pub fn sections(manifest: &Value) -> Vec<Section<'_>> {
    let Some(fields) = manifest.as_object() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (key, spec) in fields {
        if !spec.is_object() {
            continue;
        }
        if let Some(name) = key.strip_suffix(IO_SUFFIX) {
            found.push(Section {
                name: name.to_string(),
                io: key.clone(),
                spec,
            });
        } else if let Some(io) = spec["io"].as_str() {
            found.push(Section {
                name: key.clone(),
                io: io.to_string(),
                spec,
            });
        }
    }
    found
}
