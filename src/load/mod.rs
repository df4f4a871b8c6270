//! Loading: each file format is a sibling module that validates everything
//! before touching tensor data and returns a zero-copy [`Matrix`] view over
//! bytes owned by a memory map that lives outside it.

pub mod safetensors;

use crate::dtype::Dtype;

/// How the user asked for the tensor to be chosen and read.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--key`: the tensor's name; `None` picks one (see [`safetensors::DEFAULT_KEYS`]).
    pub key: Option<String>,
    /// `--as`: how to read a U16/I16 tensor (bf16 or f16 bits stored as integers).
    pub reinterpret: Option<Dtype>,
}

/// What a loader found: the tensor's name and how it was stored.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// The dtype as stored in the file (for example `U16` when read `--as bf16`).
    pub stored_dtype: String,
}
