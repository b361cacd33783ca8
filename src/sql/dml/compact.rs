//! DM's `compact`: a batch's changes to the same row merged into one.

use std::collections::HashMap;
use std::sync::Arc;

use super::{ChangeKeys, DmlKind, RowChange, TargetTable};
use crate::binlog::value::Value;

/// DM's `compact`: merges the changes of one batch that touch the same row into one.
///
/// Only tables whose handle (primary key, or not-null unique key) is their only unique key
/// are compacted: changes to different rows of such a table cannot conflict, so merging a
/// row's changes into the place of its first change keeps the batch's outcome. A
/// key-changing UPDATE becomes DELETE old + INSERT new first. Rules, per row:
/// INSERT+UPDATE → INSERT; UPDATE+UPDATE → UPDATE; UPDATE+DELETE → DELETE;
/// INSERT+DELETE → DELETE; DELETE+INSERT → INSERT in safe mode (REPLACE).
/// Other tables' changes pass through in order.
pub fn compact(changes: Vec<RowChange>) -> Vec<RowChange> {
    let compactable = |t: &TargetTable| t.handle.is_some() && t.unique_keys.is_empty();
    let mut out: Vec<Option<RowChange>> = Vec::with_capacity(changes.len());
    let mut slot: HashMap<(usize, String), usize> = HashMap::new();
    let mut key = String::new();
    for ch in changes {
        if !compactable(&ch.table) {
            out.push(Some(ch));
            continue;
        }
        let split: Vec<RowChange> = if ch.kind == DmlKind::Update && ch.changes_key() {
            vec![
                RowChange {
                    kind: DmlKind::Delete,
                    after: None,
                    ..ch.clone()
                },
                RowChange {
                    kind: DmlKind::Insert,
                    before: None,
                    ..ch
                },
            ]
        } else {
            vec![ch]
        };
        for ch in split {
            let image = match ch.kind {
                DmlKind::Insert => ch.after.as_deref(),
                _ => ch.before.as_deref(),
            };
            let Some(image) = image else {
                out.push(Some(ch));
                continue;
            };
            key.clear();
            for &i in ch.table.handle.as_deref().unwrap_or(&[]) {
                image
                    .get(i)
                    .unwrap_or(&Value::Null)
                    .write_sql_literal(&ch.table.columns[i], &mut key);
                key.push('\u{0}');
            }
            let id = (Arc::as_ptr(&ch.table) as usize, key.clone());
            match slot.get(&id) {
                Some(&i) => {
                    let prev = out[i].take().expect("a slot holds its row's change");
                    out[i] = Some(merge(prev, ch));
                }
                None => {
                    slot.insert(id, out.len());
                    out.push(Some(ch));
                }
            }
        }
    }
    // Merged and split changes have other images: their keys are computed again.
    out.into_iter()
        .flatten()
        .map(|ch| RowChange {
            keys: ChangeKeys::default(),
            ..ch
        })
        .collect()
}

/// Merges `next` into `prev`, two changes of the same row in order.
fn merge(prev: RowChange, next: RowChange) -> RowChange {
    let safe = prev.safe_mode || next.safe_mode;
    match (prev.kind, next.kind) {
        (DmlKind::Insert, DmlKind::Update) => RowChange {
            kind: DmlKind::Insert,
            before: None,
            after: next.after,
            safe_mode: safe,
            ..prev
        },
        (DmlKind::Update, DmlKind::Update) => RowChange {
            after: next.after,
            safe_mode: safe,
            ..prev
        },
        (DmlKind::Update, DmlKind::Delete) => RowChange {
            kind: DmlKind::Delete,
            after: None,
            safe_mode: safe,
            ..prev
        },
        (DmlKind::Insert, DmlKind::Delete) => RowChange {
            safe_mode: safe,
            ..next
        },
        (DmlKind::Delete, DmlKind::Insert) => RowChange {
            safe_mode: true,
            ..next
        },
        // Not reachable for a consistent stream (e.g. INSERT after INSERT); the later change
        // wins in its idempotent form.
        _ => RowChange {
            safe_mode: true,
            ..next
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::value::{ColumnInfo, SqlType};

    fn t() -> Arc<TargetTable> {
        Arc::new(TargetTable::new(
            "db",
            "t",
            vec![
                ColumnInfo::new("id", SqlType::Int),
                ColumnInfo::new("v", SqlType::Int),
            ],
            Some(vec![0]),
            vec![],
        ))
    }

    fn r(id: i64, v: i64) -> Option<Vec<Value>> {
        Some(vec![Value::Int(id), Value::Int(v)])
    }

    fn ch(
        t: &Arc<TargetTable>,
        kind: DmlKind,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
    ) -> RowChange {
        RowChange {
            table: t.clone(),
            kind,
            before,
            after,
            safe_mode: false,
            ts: 0,
            keys: ChangeKeys::default(),
        }
    }

    type Shape = (DmlKind, Option<Vec<Value>>, Option<Vec<Value>>, bool);

    fn shape(v: &[RowChange]) -> Vec<Shape> {
        v.iter()
            .map(|c| (c.kind, c.before.clone(), c.after.clone(), c.safe_mode))
            .collect()
    }

    #[test]
    fn merges_per_row() {
        let t = t();
        let out = compact(vec![
            ch(&t, DmlKind::Insert, None, r(1, 1)),
            ch(&t, DmlKind::Update, r(1, 1), r(1, 2)),
            ch(&t, DmlKind::Insert, None, r(2, 1)),
            ch(&t, DmlKind::Update, r(3, 1), r(3, 2)),
            ch(&t, DmlKind::Update, r(3, 2), r(3, 3)),
            ch(&t, DmlKind::Delete, r(2, 1), None),
            ch(&t, DmlKind::Delete, r(4, 1), None),
            ch(&t, DmlKind::Insert, None, r(4, 9)),
        ]);
        assert_eq!(
            shape(&out),
            [
                (DmlKind::Insert, None, r(1, 2), false),
                (DmlKind::Delete, r(2, 1), None, false),
                (DmlKind::Update, r(3, 1), r(3, 3), false),
                (DmlKind::Insert, None, r(4, 9), true),
            ]
        );
    }

    #[test]
    fn key_change_splits_and_other_tables_pass() {
        let t = t();
        let keyless = Arc::new(TargetTable::new(
            "db",
            "k",
            vec![ColumnInfo::new("v", SqlType::Int)],
            None,
            vec![],
        ));
        let out = compact(vec![
            ch(&t, DmlKind::Update, r(1, 1), r(2, 1)),
            ch(&keyless, DmlKind::Insert, None, Some(vec![Value::Int(1)])),
            ch(&t, DmlKind::Update, r(2, 1), r(2, 5)),
            ch(&keyless, DmlKind::Insert, None, Some(vec![Value::Int(1)])),
        ]);
        assert_eq!(out.len(), 4);
        assert_eq!(
            (out[0].kind, out[1].kind, out[3].kind),
            (DmlKind::Delete, DmlKind::Insert, DmlKind::Insert)
        );
        assert_eq!(
            out[1].after,
            r(2, 5),
            "the moved row's later update merges into its insert"
        );
        assert!(Arc::ptr_eq(&out[2].table, &keyless) && Arc::ptr_eq(&out[3].table, &keyless));
    }
}
