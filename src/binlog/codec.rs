//! What the binlog decoders share: the decoding error ([`DecodeError`], with its error code)
//! and the big-endian integer reader of the packed temporal and decimal formats. Below both
//! the value decoders ([`super::value`], [`super::json`]) and the rows-event decoder
//! ([`super::decode`]), so neither imports the other.

use crate::error::codes::ErrorCode;
use crate::error::{DmError, HasCode, codes};

/// Why a TABLE_MAP or rows event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The TABLE_MAP and the tracked schema disagree on the number of columns.
    #[error(
        "table `{schema}`.`{table}` has {binlog} columns in the binlog but {tracked} in the tracked schema"
    )]
    ColumnCountMismatch {
        schema: String,
        table: String,
        binlog: usize,
        tracked: usize,
    },
    /// A rows event has a different column count than its TABLE_MAP.
    #[error("rows event has {event} columns but table id {table_id} has {plan}")]
    RowColumnCountMismatch {
        table_id: u64,
        event: u64,
        plan: usize,
    },
    /// A rows event for another table than the plan's.
    #[error("rows event is for table id {event} but the plan is for table id {plan}")]
    TableIdMismatch { event: u64, plan: u64 },
    /// An event type that is not a rows event.
    #[error("event type {event_type} is not a rows event")]
    NotRowsEvent { event_type: u8 },
    /// A column wire type this decoder does not handle.
    #[error("column {column} (`{name}`) has unsupported binlog type {type_code}")]
    UnsupportedColumnType {
        column: usize,
        name: String,
        type_code: u8,
    },
    /// A feature this decoder does not handle (compressed or partial rows events).
    #[error("unsupported: {what}")]
    Unsupported { what: String },
    /// The event ends before the data it announces.
    #[error("event truncated: {need} bytes needed at offset {at}")]
    Truncated { at: usize, need: usize },
    /// Data that cannot be valid (bad metadata, digit groups out of range, …).
    #[error("invalid data: {what}")]
    Invalid { what: String },
    /// A value of one column failed; `source` says how.
    #[error("column {column} cannot be decoded")]
    Column {
        column: usize,
        #[source]
        source: Box<DecodeError>,
    },
}

impl HasCode for DecodeError {
    fn code(&self) -> &'static ErrorCode {
        match self {
            Self::ColumnCountMismatch { .. } | Self::RowColumnCountMismatch { .. } => {
                &codes::SYNCER_UNIT_DML_COLUMN_NOT_MATCH
            }
            Self::TableIdMismatch { .. }
            | Self::NotRowsEvent { .. }
            | Self::UnsupportedColumnType { .. }
            | Self::Unsupported { .. }
            | Self::Truncated { .. }
            | Self::Invalid { .. }
            | Self::Column { .. } => &codes::NOT_SET,
        }
    }
}

impl DecodeError {
    /// The boundary error: this error's code and message, its source chain as causes.
    pub fn to_dm(&self) -> DmError {
        let mut dm = DmError::new(self.code(), self.to_string());
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            dm = dm.with_cause_text(s.to_string());
            source = s.source();
        }
        dm
    }

    pub(crate) fn in_column(self, column: usize) -> Self {
        Self::Column {
            column,
            source: Box::new(self),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Self::Invalid { what: what.into() }
    }
}

#[inline]
pub(crate) fn be_uint(b: &[u8]) -> u64 {
    b.iter().fold(0, |acc, &x| (acc << 8) | u64::from(x))
}
