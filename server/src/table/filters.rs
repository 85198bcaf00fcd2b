//! Narrowing a scan with `_partition` and `_offset` predicates: `_partition = 2`,
//! `_partition IN (0, 1)`, `_offset >= 100 AND _offset < 200`, `_offset BETWEEN a AND b`.
//! The ranges are conservative (a superset); DataFusion applies the filters exactly.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use crate::stream::Stream;

/// Offsets `[from, to)` to read from one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRange {
    pub partition: u32,
    pub from: u64,
    pub to: u64,
}

/// Whether the scan can use `expr` to narrow what it reads.
pub fn is_offset_filter(expr: &Expr) -> bool {
    !constraints(expr).is_empty()
}

/// One bound learnt from a predicate.
#[derive(Debug, Clone, PartialEq)]
enum Constraint {
    Partitions(Vec<u32>),
    OffsetAtLeast(u64),
    OffsetBelow(u64),
}

fn literal_u64(expr: &Expr) -> Option<i128> {
    match expr {
        Expr::Literal(value, _) => match value {
            ScalarValue::Int8(Some(v)) => Some(*v as i128),
            ScalarValue::Int16(Some(v)) => Some(*v as i128),
            ScalarValue::Int32(Some(v)) => Some(*v as i128),
            ScalarValue::Int64(Some(v)) => Some(*v as i128),
            ScalarValue::UInt8(Some(v)) => Some(*v as i128),
            ScalarValue::UInt16(Some(v)) => Some(*v as i128),
            ScalarValue::UInt32(Some(v)) => Some(*v as i128),
            ScalarValue::UInt64(Some(v)) => Some(*v as i128),
            _ => None,
        },
        Expr::Cast(cast) => literal_u64(&cast.expr),
        Expr::TryCast(cast) => literal_u64(&cast.expr),
        _ => None,
    }
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(cast) => column_name(&cast.expr),
        _ => None,
    }
}

fn clamp(v: i128) -> u64 {
    v.clamp(0, u64::MAX as i128) as u64
}

fn constraints(expr: &Expr) -> Vec<Constraint> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut all = constraints(left);
            all.extend(constraints(right));
            all
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, value, op) = match (column_name(left), literal_u64(right)) {
                (Some(c), Some(v)) => (c, v, *op),
                _ => match (literal_u64(left), column_name(right), op.swap()) {
                    (Some(v), Some(c), Some(op)) => (c, v, op),
                    _ => return vec![],
                },
            };
            match (column, op) {
                ("_partition", Operator::Eq) if value >= 0 => {
                    vec![Constraint::Partitions(vec![value as u32])]
                }
                ("_offset", Operator::Eq) => vec![
                    Constraint::OffsetAtLeast(clamp(value)),
                    Constraint::OffsetBelow(clamp(value + 1)),
                ],
                ("_offset", Operator::Gt) => vec![Constraint::OffsetAtLeast(clamp(value + 1))],
                ("_offset", Operator::GtEq) => vec![Constraint::OffsetAtLeast(clamp(value))],
                ("_offset", Operator::Lt) => vec![Constraint::OffsetBelow(clamp(value))],
                ("_offset", Operator::LtEq) => vec![Constraint::OffsetBelow(clamp(value + 1))],
                _ => vec![],
            }
        }
        Expr::InList(list) if !list.negated && column_name(&list.expr) == Some("_partition") => {
            let values: Option<Vec<u32>> = list
                .list
                .iter()
                .map(|e| literal_u64(e).map(|v| clamp(v) as u32))
                .collect();
            values
                .map(|v| vec![Constraint::Partitions(v)])
                .unwrap_or_default()
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if column_name(expr) == Some("_offset") => match (literal_u64(low), literal_u64(high)) {
            (Some(lo), Some(hi)) => vec![
                Constraint::OffsetAtLeast(clamp(lo)),
                Constraint::OffsetBelow(clamp(hi + 1)),
            ],
            _ => vec![],
        },
        _ => vec![],
    }
}

/// The offsets of each partition a scan with `filters` must read, as of now: from the
/// earliest retained offset up to the committed offset, narrowed by the filters.
pub fn partition_ranges(stream: &Stream, filters: &[Expr]) -> Vec<PartitionRange> {
    let mut partitions: Option<Vec<u32>> = None;
    let (mut lower, mut upper) = (0u64, u64::MAX);
    for constraint in filters.iter().flat_map(constraints) {
        match constraint {
            Constraint::Partitions(p) => {
                partitions = Some(match partitions {
                    None => p,
                    Some(existing) => existing.into_iter().filter(|x| p.contains(x)).collect(),
                })
            }
            Constraint::OffsetAtLeast(v) => lower = lower.max(v),
            Constraint::OffsetBelow(v) => upper = upper.min(v),
        }
    }
    stream
        .partitions()
        .iter()
        .enumerate()
        .filter(|(p, _)| {
            partitions
                .as_ref()
                .is_none_or(|set| set.contains(&(*p as u32)))
        })
        .map(|(p, log)| PartitionRange {
            partition: p as u32,
            from: lower.max(log.earliest_offset()),
            to: upper.min(log.committed_offset()),
        })
        .filter(|r| r.from < r.to)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn recognises_offset_predicates() {
        let f = col("_offset")
            .gt_eq(lit(10i64))
            .and(col("_offset").lt(lit(20i64)));
        assert_eq!(
            constraints(&f),
            vec![Constraint::OffsetAtLeast(10), Constraint::OffsetBelow(20)]
        );
        assert_eq!(
            constraints(&lit(5i64).lt(col("_offset"))),
            vec![Constraint::OffsetAtLeast(6)]
        );
        assert_eq!(
            constraints(&col("_partition").in_list(vec![lit(1i32), lit(3i32)], false)),
            vec![Constraint::Partitions(vec![1, 3])]
        );
        assert!(!is_offset_filter(&col("price").gt(lit(5i64))));
        assert!(!is_offset_filter(&col("_offset").gt(col("price"))));
    }
}
