//! Recipes as flags: a preset is a list of flags placed before the user's own, so every
//! hyperparameter stays overridable (the tool's parser must let a later flag override an
//! earlier one: clap's `args_override_self`) and a resumed run re-expands the preset it was
//! started with.

use std::process::ExitCode;

use clap::Parser;
use ember_core::{EmberError, Result};
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

/// A parsed command line and its preset-expanded form (what a run records).
pub struct Invocation<C> {
    pub cli: C,
    pub expanded: Vec<String>,
}

/// A tool's presets: the list and the one used when `--preset` is not given.
pub struct Presets {
    pub tool: &'static str,
    pub list: &'static [Preset],
    pub default: &'static str,
}

impl Presets {
    fn expand(&self, argv: &[String]) -> Vec<String> {
        let mut out = expand(argv, self.list, self.default);
        if out[0].is_empty() {
            out[0] = self.tool.into();
        }
        out
    }

    /// `argv` (the program name first) with its preset expanded, parsed; a bad command line
    /// is one line on stderr and exit code 2.
    pub fn parse<C: Parser>(
        &self,
        argv: &[String],
    ) -> std::result::Result<Invocation<C>, ExitCode> {
        let expanded = self.expand(argv);
        let cli = crate::parse_args_from(expanded.clone())?;
        Ok(Invocation { cli, expanded })
    }

    /// A run's saved command line (without the program name) parsed again, its preset
    /// expanded as it was.
    pub fn reparse<C: Parser>(&self, saved: &[String]) -> Result<Invocation<C>> {
        let full: Vec<String> = std::iter::once(self.tool.to_string())
            .chain(saved.iter().cloned())
            .collect();
        let expanded = self.expand(&full);
        let cli = C::try_parse_from(&expanded)
            .map_err(|e| EmberError::bad_input(e.kind().to_string()))?;
        Ok(Invocation { cli, expanded })
    }
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
        assert_eq!(
            out,
            strings(&["tool", "--lr", "2", "--preset=b", "--lr", "3"])
        );
        let out = expand(&strings(&["tool"]), PRESETS, "a");
        assert_eq!(out, strings(&["tool", "--lr", "1"]));
    }
}
