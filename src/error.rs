//! The library's error type. Every variant renders as one line that names the
//! problem (and the file, where there is one); `main` maps them to exit codes.

use std::path::PathBuf;

pub(crate) use crate::escape::one_line;

/// Everything that can go wrong in a survey.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or mapped.
    #[error("{}: {source}", one_line(&path.display().to_string()))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed file of the format it claims to be.
    #[error("{}: not a valid {format} file: {reason}", one_line(&path.display().to_string()))]
    Format {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    /// A folder or name given as `--file` that cannot be used as a model.
    #[error("{}: {reason}", one_line(&path.display().to_string()))]
    Input { path: PathBuf, reason: String },
    /// The requested tensor is not in the file, or no tensor could be chosen.
    #[error("{}: {reason}", one_line(&path.display().to_string()))]
    Tensor { path: PathBuf, reason: String },
    /// A flag combination that cannot work (for example `--as` on a float tensor).
    #[error("{0}")]
    Usage(String),
    /// `--device gpu` was asked for and no adapter could be used.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The GPU reported an error while running the kernels.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The caller asked the work to stop ([`crate::progress::Interrupt`]).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// True for problems with what the user gave us or asked for (exit code
    /// 2); false for a device that failed while running (exit code 1).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Gpu(_) | Error::Interrupted)
    }
}

/// Shorthand used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
