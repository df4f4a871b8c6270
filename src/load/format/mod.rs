//! The file formats of tensors, one module each.

pub mod gguf;
pub mod hdf5;
pub mod npy;
pub mod pytorch;
pub mod safetensors;
