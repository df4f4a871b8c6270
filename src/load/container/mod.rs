//! Containers other formats are stored in: zip archives (PyTorch
//! checkpoints, `.npz`) and the pickles inside torch checkpoints.

pub mod pickle;
pub mod zip;
