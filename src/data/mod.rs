//! Datasets: reading files, recognising their shape, rendering records with the chat template,
//! tokenizing with loss masks, and batching.

mod batch;
mod dataset;
mod format;
mod preview;
mod records;
mod render;

pub use batch::{epoch_order, Batch, IGNORE, LENGTH_MULTIPLE};
pub use dataset::{BadRecords, DataConfig, DataReport, Dataset, Example, LongRecords, Origin, Skipped};
pub use format::{DatasetFormat, Sample};
pub use preview::{segments, Segment};
pub use records::{read_file, FileRecords, RecordProblem, SourceRecord};
pub use render::{alpaca_prompt, generation_prompt, render};
