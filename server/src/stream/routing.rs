//! Routing rows to partitions by a hash of their key columns.
//!
//! The hash is DataFusion's own row hash with a fixed seed, so the same key always goes
//! to the same partition (also across restarts of the same build), which keeps per-key
//! order: rows of one key are in one partition, in write order.

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::common::hash_utils::{RandomState, create_hashes};

use crate::log::LogError;

const SEED: u64 = 0x5745_4952; // "WEIR"

/// Splits `batch` into `(partition, rows)` parts, keeping row order within each part.
pub fn split_by_key(
    batch: &RecordBatch,
    key_indices: &[usize],
    partitions: usize,
) -> Result<Vec<(usize, RecordBatch)>, LogError> {
    let keys: Vec<_> = key_indices
        .iter()
        .map(|&i| batch.column(i).clone())
        .collect();
    let mut hashes = vec![0u64; batch.num_rows()];
    create_hashes(&keys, &RandomState::with_seed(SEED), &mut hashes)
        .map_err(|e| LogError::Encode(e.into()))?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); partitions];
    for (row, hash) in hashes.iter().enumerate() {
        // The hash's high bits pick the partition (multiply-shift): its low bits cluster
        // for consecutive integer keys.
        let partition = ((*hash as u128 * partitions as u128) >> 64) as usize;
        rows[partition].push(row as u32);
    }
    let mut parts = Vec::new();
    for (p, indices) in rows.into_iter().enumerate() {
        if indices.is_empty() {
            continue;
        }
        let part = if indices.len() == batch.num_rows() {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(indices)).map_err(LogError::Encode)?
        };
        parts.push((p, part));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn same_key_same_partition_and_order_kept() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let keys: Vec<String> = (0..100).map(|i| format!("key{}", i % 7)).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.clone())),
                Arc::new(Int64Array::from_iter_values(0..100)),
            ],
        )
        .unwrap();
        let parts = split_by_key(&batch, &[0], 4).unwrap();
        assert_eq!(parts.iter().map(|(_, b)| b.num_rows()).sum::<usize>(), 100);
        let again = split_by_key(&batch, &[0], 4).unwrap();
        for ((p1, b1), (p2, b2)) in parts.iter().zip(&again) {
            assert_eq!((p1, b1), (p2, b2));
        }
        for (_, part) in &parts {
            let v = part
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            assert!(v.values().windows(2).all(|w| w[0] < w[1]), "order kept");
        }
        // Consecutive integer keys spread over the partitions.
        let ints = RecordBatch::try_from_iter(vec![(
            "k",
            Arc::new(Int64Array::from_iter_values(0..8)) as _,
        )])
        .unwrap();
        let spread = split_by_key(&ints, &[0], 4).unwrap();
        assert!(
            spread.len() >= 3,
            "keys 0..8 landed in {} partitions",
            spread.len()
        );
        // Every key lands in exactly one partition.
        for k in 0..7 {
            let key = format!("key{k}");
            let holders = parts
                .iter()
                .filter(|(_, b)| {
                    let s = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                    s.iter().any(|x| x == Some(key.as_str()))
                })
                .count();
            assert_eq!(holders, 1);
        }
    }
}
