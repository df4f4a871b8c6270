//! `--trajectory FILE --key W`: one 3-D tensor `[steps, tokens, dim]` read a
//! step at a time.

use std::path::Path;

use super::series::{StepSelection, StepSource};
use super::LoadOptions;
use crate::error::{Error, Result};

/// Opens the trajectory tensor `opts.key` of `path` (safetensors or HDF5),
/// keeping the steps `sel` selects.
pub fn open_trajectory(
    path: &Path,
    _opts: &LoadOptions,
    _sel: &StepSelection,
) -> Result<Box<dyn StepSource>> {
    Err(Error::Input {
        path: path.to_path_buf(),
        reason: "trajectories are not read yet".into(),
    })
}
