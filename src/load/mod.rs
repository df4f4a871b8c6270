//! Loading: [`open`] recognises an input by its content ([`resolve`]), opens
//! the files that hold the chosen tensor ([`model`]), chooses it the same way
//! whatever the format ([`choose`]), reads it as a [`Matrix`](crate::Matrix),
//! and finds its token strings ([`vocab`]).
//!
//! Each file format is a module of [`format`] (with the containers some of
//! them are stored in under [`container`]) that validates everything before
//! touching tensor data and depends only on [`source`], the types and traits
//! every format implements. A checkpoint series is read step by step through
//! [`steps`].

pub mod choose;
pub mod container;
pub mod format;
pub mod hub;
pub mod model;
pub mod resolve;
pub mod source;
pub mod steps;
pub mod vocab;

pub use container::{pickle, zip};
pub use format::gguf::{self, quant};
pub use format::{hdf5, npy, pytorch, safetensors};
pub use hub as hf;
pub use steps as series;
pub use steps::trajectory;
pub use vocab::tokenizer;

pub use choose::{choose, pick_name, read_as, INPUT_EMBEDDING_KEYS, OUTPUT_HEAD_KEYS};
pub use model::{load_tensor, open, read_tensor, LoadOptions, Loaded, Role, TensorInfo, Tied};
pub use resolve::{open_file, sniff, zip_contents, Sniffed, ZipContents};
pub use source::{Bytes, StoredDtype, TensorDesc, TensorSource};
pub use vocab::{find_tokenizer, read_tokenizer, TokenNames, Vocab, TOKENIZER_FILES};
