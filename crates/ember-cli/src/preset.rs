//! Recipes as flags: a preset is a list of flags placed before the user's own, so every
//! hyperparameter stays overridable (the tool's parser must let a later flag override an
//! earlier one: clap's `args_override_self`) and a resumed run re-expands the preset it was
//! started with.

use serde_json::{json, Value};

pub struct Preset {
    pub name: &'static str,
    pub about: &'static str,
    pub flags: &'static [&'static str],
}

/// `argv` (program name first) with the flags of the preset that `--preset` names (or
/// `default`) put right after the program name.
pub fn expand(argv: &[String], presets: &[Preset], default: &str) -> Vec<String> {
    let mut chosen = default.to_string();
    let mut it = argv.iter().skip(1).peekable();
    while let Some(a) = it.next() {
        if a == "--preset" {
            if let Some(v) = it.peek() {
                chosen = v.to_string();
            }
        } else if let Some(v) = a.strip_prefix("--preset=") {
            chosen = v.to_string();
        }
    }
    let flags = presets
        .iter()
        .find(|p| p.name == chosen)
        .map_or(&[][..], |p| p.flags);
    let mut out = vec![argv.first().cloned().unwrap_or_default()];
    out.extend(flags.iter().map(|f| f.to_string()));
    out.extend(argv.iter().skip(1).cloned());
    out
}

/// The preset names, for clap.
pub fn names(presets: &'static [Preset]) -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(presets.iter().map(|p| p.name))
}

/// What `--show-preset NAME` prints.
pub fn show(presets: &[Preset], name: &str) -> Value {
    match presets.iter().find(|p| p.name == name) {
        Some(p) => json!({ "preset": p.name, "about": p.about, "flags": p.flags }),
        None => json!({ "preset": name, "error": "no such preset" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRESETS: &[Preset] = &[
        Preset {
            name: "a",
            about: "",
            flags: &["--lr", "1"],
        },
        Preset {
            name: "b",
            about: "",
            flags: &["--lr", "2"],
        },
    ];

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_chosen_preset_goes_first() {
        let out = expand(&strings(&["tool", "--preset=b", "--lr", "3"]), PRESETS, "a");
        assert_eq!(out, strings(&["tool", "--lr", "2", "--preset=b", "--lr", "3"]));
        let out = expand(&strings(&["tool"]), PRESETS, "a");
        assert_eq!(out, strings(&["tool", "--lr", "1"]));
    }
}
