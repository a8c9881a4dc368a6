use ember_core::hub::{HubEnv, HubFile};
use ember_core::{EmberError, Result};
use serde_json::{json, Value};

use crate::cli::PullCommand;

pub fn run(cmd: &PullCommand) -> Result<Value> {
    let file = HubFile::parse(&cmd.file)?.ok_or_else(|| {
        EmberError::bad_input(format!(
            "`{}` is not a Hub address (hf://owner/repo[@revision]/file)",
            cmd.file
        ))
    })?;
    let path = HubEnv::from_env().fetch(&file)?;
    Ok(
        json!({ "repo": file.repo, "revision": file.revision, "file": file.file, "path": path.display().to_string() }),
    )
}
