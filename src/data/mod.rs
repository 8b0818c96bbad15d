//! Datasets: reading files, recognising their shape, rendering records with the chat template,
//! tokenizing with loss masks, and batching.

mod batch;
pub mod columns;
mod dataset;
mod format;
mod labelled;
mod preview;
mod records;
mod render;

pub use batch::{Batch, IGNORE, LENGTH_MULTIPLE, LabelTarget, epoch_order, pooled_position};
pub use dataset::{
    BadRecords, DataConfig, DataReport, Dataset, Example, LongRecords, Origin, Skipped, count_records, file_columns, read_samples,
};
pub(crate) use dataset::{nothing_to_evaluate, record_format};
pub use format::{DatasetFormat, Sample};
pub use labelled::{is_labelled_file, read_labelled_file};
pub use preview::{Segment, segments};
pub(crate) use records::kind as json_kind;
pub use records::{RecordItem, RecordProblem, SourceRecord, for_each_record};
pub use render::{alpaca_prompt, conversation_prompt, generation_prompt, render};
