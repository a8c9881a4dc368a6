//! One error type for the whole toolkit. Its variant decides the process exit code:
//! bad input (the user can fix it) exits 2, everything else exits 1.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, EmberError>;

#[derive(Debug, thiserror::Error)]
pub enum EmberError {
    /// Input the user can fix: a flag value, a file, a shape, a combination of options.
    #[error("{0}")]
    BadInput(String),
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A failure inside candle (a kernel, a shape mismatch in model code).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A failure while running that is not the user's input.
    #[error("{0}")]
    Runtime(String),
}

impl EmberError {
    pub fn bad_input(msg: impl Into<String>) -> Self {
        Self::BadInput(msg.into())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code for this error: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::BadInput(_) | Self::Io { .. } => 2,
            Self::Candle(_) | Self::Runtime(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_separate_user_errors_from_runtime_errors() {
        assert_eq!(EmberError::bad_input("unknown arch `x`").exit_code(), 2);
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "missing");
        assert_eq!(EmberError::io("/nope", io).exit_code(), 2);
        assert_eq!(EmberError::Runtime("diverged".into()).exit_code(), 1);
        let candle = candle_core::Error::Msg("kernel".into());
        assert_eq!(EmberError::from(candle).exit_code(), 1);
    }

    #[test]
    fn io_errors_name_the_path() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let msg = EmberError::io("/data/train.gz", io).to_string();
        assert_eq!(msg, "/data/train.gz: No such file");
    }
}
