//! Splitting a table into chunks: key ranges of about `rows` rows on a single-column integer
//! key, read in parallel by the dump connections.
//!
//! A table splits when it has a single-column integer primary key, or else a single-column
//! NOT NULL unique integer key. Its `MIN`/`MAX` are read inside the snapshot; the key span is
//! cut into `n = ⌈min(estimate, span) / rows⌉` equal ranges, where `estimate` is
//! `information_schema.TABLES.TABLE_ROWS` (the span itself when the statistics say 0), so a
//! sparse key does not produce a flood of empty ranges. The first range is open below and the
//! last open above: every row is in exactly one range even when its connection's snapshot is
//! younger than the one `MIN`/`MAX` came from (consistency `none`). Other tables are one
//! chunk without a key condition.
//!
//! `rows` is lowered for wide rows so that a chunk is expected to fill at most
//! [`TARGET_FILES_PER_CHUNK`] files of `chunk-filesize` (file numbers leave room for
//! [`super::writer::PARTS_PER_CHUNK`]).

use crate::sql::quote_ident;

/// Most chunks one table is split into.
pub const MAX_CHUNKS_PER_TABLE: u64 = 100_000;

/// Files a planned chunk is expected to fill at most.
pub const TARGET_FILES_PER_CHUNK: u64 = 100;

/// A half-open key range `[lo, hi)`; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub lo: Option<i128>,
    /// Exclusive upper bound.
    pub hi: Option<i128>,
}

impl KeyRange {
    /// The whole table.
    pub const ALL: KeyRange = KeyRange { lo: None, hi: None };
}

/// One unit of work for a dump connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the table in the dump's table list.
    pub table: usize,
    /// The chunk's position in its table (fixes its file numbers).
    pub index: u64,
    /// Whether the table has more than one chunk.
    pub split: bool,
    /// The rows of the chunk (ignored unless `split`).
    pub range: KeyRange,
}

/// Rows per chunk for a table: `rows`, lowered so that a chunk of rows of `avg_row_length`
/// bytes is expected to fill at most [`TARGET_FILES_PER_CHUNK`] files of `file_size` bytes
/// (0 = unlimited).
pub fn effective_rows(rows: u64, avg_row_length: u64, file_size: u64) -> u64 {
    if avg_row_length == 0 || file_size == 0 {
        return rows.max(1);
    }
    let cap = file_size.saturating_mul(TARGET_FILES_PER_CHUNK) / avg_row_length;
    rows.min(cap).max(1)
}

/// The key ranges of a table whose key runs from `min` to `max` (see the module docs).
pub fn plan_ranges(min: i128, max: i128, estimate: u64, rows: u64) -> Vec<KeyRange> {
    if max < min {
        return vec![KeyRange::ALL];
    }
    let span = max - min + 1;
    let est = if estimate == 0 {
        span
    } else {
        span.min(i128::from(estimate))
    };
    let rows = i128::from(rows.max(1));
    let n = ((est + rows - 1) / rows).clamp(1, i128::from(MAX_CHUNKS_PER_TABLE));
    if n == 1 {
        return vec![KeyRange::ALL];
    }
    let step = (span + n - 1) / n;
    let n = (span + step - 1) / step;
    (0..n)
        .map(|i| KeyRange {
            lo: (i > 0).then(|| min + i * step),
            hi: (i + 1 < n).then(|| min + (i + 1) * step),
        })
        .collect()
}

/// The `WHERE …` of a chunk's SELECT (with a leading space), or empty: the task's `where`
/// and the chunk's key range.
pub fn where_sql(user_where: &str, key: Option<&str>, range: KeyRange) -> String {
    let mut conds = Vec::new();
    if !user_where.trim().is_empty() {
        conds.push(format!("({})", user_where.trim()));
    }
    if let Some(k) = key {
        let k = quote_ident(k);
        if let Some(lo) = range.lo {
            conds.push(format!("{k} >= {lo}"));
        }
        if let Some(hi) = range.hi {
            conds.push(format!("{k} < {hi}"));
        }
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_key_splits_evenly() {
        let r = plan_ranges(1, 30_000, 29_500, 5_000);
        assert_eq!(r.len(), 6);
        assert_eq!(
            r[0],
            KeyRange {
                lo: None,
                hi: Some(5_001)
            }
        );
        assert_eq!(
            r[1],
            KeyRange {
                lo: Some(5_001),
                hi: Some(10_001)
            }
        );
        assert_eq!(
            r[5],
            KeyRange {
                lo: Some(25_001),
                hi: None
            }
        );
        for w in r.windows(2) {
            assert_eq!(w[0].hi, w[1].lo, "contiguous");
        }
    }

    #[test]
    fn small_sparse_and_odd_keys() {
        assert_eq!(plan_ranges(1, 100, 100, 5_000), vec![KeyRange::ALL]);
        assert_eq!(
            plan_ranges(1, 1_000_000_000_000, 100, 5_000),
            vec![KeyRange::ALL]
        );
        // No statistics: the span decides.
        assert_eq!(plan_ranges(0, 9_999, 0, 5_000).len(), 2);
        assert_eq!(plan_ranges(5, 4, 0, 10), vec![KeyRange::ALL]);
        // BIGINT UNSIGNED extremes do not overflow.
        let r = plan_ranges(0, i128::from(u64::MAX), u64::MAX, 1);
        assert_eq!(r.len() as u64, MAX_CHUNKS_PER_TABLE);
        let r = plan_ranges(i128::from(i64::MIN), i128::from(i64::MAX), 10, 3);
        assert_eq!(r.len(), 4);
        // Uneven spans never leave an empty last range.
        let r = plan_ranges(1, 10, 10, 3);
        assert_eq!(r.len(), 4);
        assert_eq!(r[3].lo, Some(10));
    }

    #[test]
    fn rows_capped_by_file_size() {
        assert_eq!(effective_rows(200_000, 0, 64 << 20), 200_000);
        assert_eq!(effective_rows(200_000, 100, 0), 200_000);
        assert_eq!(effective_rows(200_000, 1 << 20, 1 << 20), 100);
        assert_eq!(effective_rows(200_000, 1 << 30, 1), 1);
    }

    #[test]
    fn where_clauses() {
        assert_eq!(where_sql("", None, KeyRange::ALL), "");
        assert_eq!(where_sql(" a > 1 ", None, KeyRange::ALL), " WHERE (a > 1)");
        let r = KeyRange {
            lo: Some(-5),
            hi: Some(10),
        };
        assert_eq!(
            where_sql("x = 'y'", Some("i`d"), r),
            " WHERE (x = 'y') AND `i``d` >= -5 AND `i``d` < 10"
        );
        assert_eq!(
            where_sql(
                "",
                Some("id"),
                KeyRange {
                    lo: None,
                    hi: Some(3)
                }
            ),
            " WHERE `id` < 3"
        );
    }
}
