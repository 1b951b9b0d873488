//! The record pipeline: how a byte range of a file divides into records ([`span`]),
//! and the one path every data record takes to the device and back ([`pipeline`],
//! through the stages of [`stage`]), with the cache of verified records ([`cache`]).
//!
//! The file system layer works in spans and logical bytes; the volume supplies the
//! blocks ([`BlockSource`], [`BlockSink`]). Nothing above this module computes a
//! checksum, chooses a pointer flag or pads a record.

mod batch;
mod cache;
mod codec;
mod counters;
mod pipeline;
mod span;
mod stage;

pub use batch::DEVICE_MIN_BYTES;
pub use cache::RecordCache;
pub use counters::{RecordCounters, Totals};
pub use pipeline::{
    load, load_every_copy, place, prepare_batch, read_cached, BlockSink, BlockSource, Healing,
    Outcome, RecordError,
};
pub use span::{RecordGeometry, Span};
pub use stage::{PreparedRecord, WriteIo, WritePolicy, WRITE};
