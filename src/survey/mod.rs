//! Grouping and statistics: pure functions over the engine's outputs (no I/O,
//! no GPU types), one file per step:
//!
//! - [`group`]: rows bucketed by hash, every bucket confirmed by comparing bytes;
//! - [`stats`]: moments, spreads, group-size summaries and duplicate counts;
//! - [`geometry`](mod@geometry): norms of the black holes and of the whole cloud, and the
//!   distances between black holes;
//! - [`nearest`]: every token's nearest distinct vector, and its summary;
//! - [`near`]: near-singularity components (union–find);
//! - [`lattice`]: step distances between black holes;
//! - [`indicators`]: under-trained-token indicators (Magikarp's), from a reference set;
//! - [`tracker`]: a checkpoint series step by step (cores, holes, events).
//!
//! The items are re-exported here, so `survey::group_rows`, `survey::Geometry`
//! and the like name them without their file.

pub mod geometry;
pub mod group;
pub mod indicators;
pub mod lattice;
pub mod near;
pub mod nearest;
pub mod stats;
pub mod tracker;

pub use geometry::{geometry, Geometry, MAX_PAIRWISE_REPRESENTATIVES};
pub use group::{group_rows, Group, GroupOptions, Grouping};
pub use stats::{defined, DuplicateCounts, MeanStd, Moments, SizeCount, SizeSummary, Spread};
