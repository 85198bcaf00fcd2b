//! Idempotent producers (Kafka's default since 3.0): InitProducerId hands out producer
//! ids, and each produce batch of such a producer carries its producer id, epoch and the
//! sequence number of its first record. Weir keeps, per producer and partition, the
//! sequence numbers of the last few batches it appended with their first offsets, so a
//! batch the client sends again (its answer was lost) is answered with the offset it got
//! the first time instead of being appended twice; a batch that skips sequence numbers is
//! refused with OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! The state is in memory: after a restart of Weir a retried batch can be appended again
//! (Kafka brokers snapshot it to disk). Transactional producers (a `transactional.id`)
//! are refused with a message.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;

/// Batches remembered per producer and partition (Kafka's max.in.flight limit is 5).
const REMEMBERED: usize = 5;

/// What to do with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Append,
    /// Already appended at this first offset: answer with it, append nothing.
    Duplicate(i64),
    /// Sequence numbers skipped or out of order: refuse it.
    OutOfOrder(String),
}

/// An idempotent producer's batch: who sent it, and the sequence numbers it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub producer: i64,
    pub epoch: i16,
    /// Sequence number of its first record.
    pub first: i32,
    pub count: i32,
}

/// The producers this listener knows.
#[derive(Debug)]
pub struct Producers {
    next_id: AtomicI64,
    /// (producer id, topic, partition) → (epoch, recent batches: first sequence, last sequence, first offset)
    batches: Mutex<HashMap<(i64, String, i32), (i16, VecDeque<(i32, i32, i64)>)>>,
}

impl Producers {
    /// Ids start from the clock, so ids handed out before a restart are not handed out again.
    pub fn new(now_ms: i64) -> Producers {
        Producers {
            next_id: AtomicI64::new(now_ms.max(1) * 1000),
            batches: Mutex::default(),
        }
    }

    /// InitProducerId: a new producer id (epoch 0).
    pub fn allocate(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether to append a batch of `count` records whose first has sequence `first`.
    pub fn check(&self, batch: &Batch, topic: &str, partition: i32) -> Check {
        let Batch {
            producer: id,
            epoch,
            first,
            count,
        } = *batch;
        let batches = self.batches.lock();
        let Some((known_epoch, recent)) = batches.get(&(id, topic.to_string(), partition)) else {
            return Check::Append;
        };
        if epoch > *known_epoch {
            return Check::Append; // a new epoch starts its sequence again
        }
        if let Some((_, _, offset)) = recent
            .iter()
            .find(|(f, l, _)| *f == first && *l == first + count - 1)
        {
            return Check::Duplicate(*offset);
        }
        let expected = recent.back().map_or(0, |(_, last, _)| last.wrapping_add(1));
        if first == expected {
            Check::Append
        } else {
            Check::OutOfOrder(format!(
                "producer {id} sent sequence {first} to {topic} partition {partition}, expected {expected}"
            ))
        }
    }

    /// Records a batch appended at `offset`.
    pub fn appended(&self, batch: &Batch, topic: &str, partition: i32, offset: i64) {
        let Batch {
            producer: id,
            epoch,
            first,
            count,
        } = *batch;
        let mut batches = self.batches.lock();
        let entry = batches
            .entry((id, topic.to_string(), partition))
            .or_insert_with(|| (epoch, VecDeque::new()));
        if epoch > entry.0 {
            *entry = (epoch, VecDeque::new());
        }
        entry.1.push_back((first, first + count - 1, offset));
        if entry.1.len() > REMEMBERED {
            entry.1.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(producer: i64, epoch: i16, first: i32, count: i32) -> Batch {
        Batch {
            producer,
            epoch,
            first,
            count,
        }
    }

    #[test]
    fn retried_batches_are_answered_not_appended() {
        let producers = Producers::new(1);
        let id = producers.allocate();
        assert_eq!(producers.check(&b(id, 0, 0, 3), "t", 0), Check::Append);
        producers.appended(&b(id, 0, 0, 3), "t", 0, 100);
        assert_eq!(
            producers.check(&b(id, 0, 0, 3), "t", 0),
            Check::Duplicate(100)
        );
        assert_eq!(producers.check(&b(id, 0, 3, 2), "t", 0), Check::Append);
        producers.appended(&b(id, 0, 3, 2), "t", 0, 103);
        assert!(matches!(
            producers.check(&b(id, 0, 9, 1), "t", 0),
            Check::OutOfOrder(_)
        ));
        assert_eq!(
            producers.check(&b(id, 0, 7, 1), "t", 1),
            Check::Append,
            "partitions are apart"
        );
        assert_eq!(
            producers.check(&b(id, 1, 0, 1), "t", 0),
            Check::Append,
            "a new epoch starts again"
        );
        assert_ne!(producers.allocate(), id);
    }
}
