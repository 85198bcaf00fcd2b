//! Recovery at open: rebuild each segment's frame index from its headers and cut the log
//! at the first torn or corrupt frame, so what survives is a prefix of what was written
//! (architecture invariant 3). Knows the file layout; knows nothing about appends.
//!
//! Only the last segment can legitimately have a torn tail: a segment is fsynced before
//! the next one is created. So the last segment is checked fully (header, bounds, dense
//! offsets, CRC), older ones by header, bounds and dense offsets; their CRCs are checked
//! when frames are read. Damage anywhere cuts the log there: the damaged file is truncated
//! at the bad frame and every later segment file is deleted, since a log with a hole in
//! its offsets is not a prefix.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::segment::{Segment, parse_segment_file_name, validate};
use super::{LogError, RecoveryReport, Result};

/// Recovers the partition in `dir` (created if missing). Returns its segments, oldest
/// first and never empty (an empty log gets segment 0), and what was found.
pub(super) fn recover(dir: &Path) -> Result<(Vec<Arc<Segment>>, RecoveryReport)> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| LogError::io(dir, "create partition directory", e))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    let listed = list_segments(dir)?;
    let mut kept: Vec<Arc<Segment>> = Vec::new();
    let mut next_offset = listed.first().map_or(0, |(base, _)| *base);
    let mut bytes_truncated = 0;
    let mut cut = false;
    let mut dir_changed = false;

    for (i, (base, path)) in listed.iter().enumerate() {
        if cut || *base != next_offset {
            if !cut {
                tracing::error!(
                    path = %path.display(), expected = next_offset,
                    "log segment does not start where the previous one ends; cutting the log here"
                );
                cut = true;
            }
            let len = fs::metadata(path)
                .map_err(|e| LogError::io(path, "stat segment", e))?
                .len();
            tracing::warn!(path = %path.display(), bytes = len, "deleting log segment after the cut");
            fs::remove_file(path).map_err(|e| LogError::io(path, "delete segment after cut", e))?;
            bytes_truncated += len;
            dir_changed = true;
            continue;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| LogError::io(path, "open segment", e))?;
        let is_last = i + 1 == listed.len();
        let found = validate(&file, path, *base, is_last)?;
        if let Some(reason) = &found.damage {
            let bytes_cut = found.file_len - found.valid_len;
            let kept_end = found.frames.last().map_or(*base, |f| f.end_offset());
            if is_last {
                tracing::warn!(
                    path = %path.display(), position = found.valid_len, bytes_cut, reason = %reason,
                    kept_offsets_below = kept_end,
                    "cutting torn or corrupt tail of the log"
                );
            } else {
                tracing::error!(
                    path = %path.display(), position = found.valid_len, bytes_cut, reason = %reason,
                    kept_offsets_below = kept_end,
                    "corruption in a sealed log segment: cutting the log here and deleting all later segments"
                );
            }
            file.set_len(found.valid_len)
                .map_err(|e| LogError::io(path, "truncate segment", e))?;
            file.sync_all()
                .map_err(|e| LogError::io(path, "fsync truncated segment", e))?;
            bytes_truncated += bytes_cut;
            cut = true;
        }
        next_offset = found.frames.last().map_or(*base, |f| f.end_offset());
        kept.push(Arc::new(Segment::from_parts(
            path.clone(),
            *base,
            file,
            found.frames,
            found.valid_len,
        )));
    }

    if kept.is_empty() {
        kept.push(Arc::new(Segment::create(dir, next_offset)?));
        dir_changed = true;
    }
    if dir_changed {
        sync_dir(dir)?;
    }
    let report = RecoveryReport {
        segments: kept.len(),
        frames: kept.iter().map(|s| s.frame_count()).sum(),
        next_offset,
        bytes_truncated,
    };
    Ok((kept, report))
}

/// Segment files in `dir`, sorted by base offset. Other files are ignored; a `.seg` file
/// with a malformed name is ignored with a warning.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let io = |e| LogError::io(dir, "list partition directory", e);
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        match parse_segment_file_name(name) {
            Some(base) => segments.push((base, path)),
            None if name.ends_with(".seg") => {
                tracing::warn!(path = %path.display(), "ignoring file with a malformed segment name");
            }
            None => {}
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Fsyncs a directory, making file creations and deletions in it durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, "fsync directory", e))
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::super::segment::{segment_file_name, validate};
    use super::super::testing::*;
    use super::super::{LogConfig, PartitionLog};
    use super::*;
    use crate::clock::ManualClock;

    fn reopen(dir: &Path) -> (PartitionLog, RecoveryReport) {
        PartitionLog::open(
            dir,
            schema(),
            tiny_segments(),
            Arc::new(ManualClock::new(0)),
        )
        .unwrap()
    }

    /// Segment files on disk, oldest first.
    fn segment_files(dir: &Path) -> Vec<(u64, PathBuf)> {
        list_segments(dir).unwrap()
    }

    #[test]
    fn creates_missing_directories_with_an_empty_segment() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("streams/bids/0");
        let (log, report) = reopen(&dir);
        assert_eq!(
            report,
            RecoveryReport {
                segments: 1,
                frames: 0,
                next_offset: 0,
                bytes_truncated: 0
            }
        );
        assert!(dir.join(segment_file_name(0)).exists());
        assert_eq!(
            (log.earliest_offset(), log.latest_offset(), log.size_bytes()),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_gap_between_segments_cuts_the_log_before_it() {
        let dir = tempfile::tempdir().unwrap();
        fill(&open(dir.path(), tiny_segments()), &[5; 20]);
        let files = segment_files(dir.path());
        assert!(files.len() >= 4);
        std::fs::remove_file(&files[1].1).unwrap();
        let later: u64 = files[2..]
            .iter()
            .map(|(_, p)| std::fs::metadata(p).unwrap().len())
            .sum();

        let (log, report) = reopen(dir.path());
        assert_eq!(report.next_offset, files[1].0);
        assert_eq!(report.bytes_truncated, later);
        assert_eq!(segment_files(dir.path()), files[..1]);
        assert_eq!(scan_ids(&log, 0, u64::MAX, None, 0), range(0, files[1].0));
    }

    #[test]
    fn corruption_in_a_sealed_segment_cuts_there() {
        let dir = tempfile::tempdir().unwrap();
        fill(&open(dir.path(), tiny_segments()), &[5; 20]);
        let files = segment_files(dir.path());
        // Overwrite the magic of the second frame of the second segment.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&files[1].1)
            .unwrap();
        let frames = validate(&file, &files[1].1, files[1].0, true)
            .unwrap()
            .frames;
        file.write_all_at(b"XXXX", frames[1].position).unwrap();

        let (log, report) = reopen(dir.path());
        assert_eq!(report.next_offset, frames[0].end_offset());
        assert_eq!(report.segments, 2);
        assert_eq!(
            std::fs::metadata(&files[1].1).unwrap().len(),
            frames[1].position
        );
        assert_eq!(
            scan_ids(&log, 0, u64::MAX, None, 0),
            range(0, frames[0].end_offset())
        );
    }

    #[derive(Debug, Clone, Copy)]
    enum Damage {
        Truncate,
        Flip,
    }

    fn damage_strategy() -> impl Strategy<Value = Damage> {
        prop_oneof![Just(Damage::Truncate), Just(Damage::Flip)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Damaging the last segment at any byte recovers exactly the frames that lie
        /// wholly before the damaged frame, and the log goes on from there.
        #[test]
        fn recovery_keeps_exactly_the_frames_before_the_damage(
            sizes in prop::collection::vec(1usize..8, 1..24),
            at in any::<prop::sample::Index>(),
            damage in damage_strategy(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let total: u64 = sizes.iter().map(|&n| n as u64).sum();
            {
                let log = open(dir.path(), tiny_segments());
                fill(&log, &sizes);
                prop_assert_eq!(log.latest_offset(), total);
            }
            let files = segment_files(dir.path());
            let (last_base, last_path) = files.last().unwrap().clone();
            let file = OpenOptions::new().read(true).write(true).open(&last_path).unwrap();
            let frames = validate(&file, &last_path, last_base, true).unwrap().frames;
            let file_len = file.metadata().unwrap().len();
            prop_assert!(file_len > 0);
            let position = at.index(file_len as usize) as u64;
            let frame_end = |f: &super::super::segment::FrameMeta| {
                f.position + super::super::segment::HEADER_LEN as u64 + u64::from(f.payload_len)
            };
            match damage {
                Damage::Truncate => file.set_len(position).unwrap(),
                Damage::Flip => {
                    let mut byte = [0u8];
                    file.read_exact_at(&mut byte, position).unwrap();
                    file.write_all_at(&[!byte[0]], position).unwrap();
                }
            }
            // Truncation keeps frames ending at or before the cut; a flipped byte lies in
            // some frame, and the frames ending at or before it are those before that frame.
            let kept: Vec<_> = frames.iter().filter(|f| frame_end(f) <= position).collect();
            drop(file);
            let kept_len = kept.last().map_or(0, |f| frame_end(f));
            let next = kept.last().map_or(last_base, |f| f.end_offset());
            let damaged_len = match damage { Damage::Truncate => position, Damage::Flip => file_len };

            let (log, report) = reopen(dir.path());
            prop_assert_eq!(report, RecoveryReport {
                segments: files.len(),
                frames: kept.len() + files[..files.len() - 1].iter().map(|(_, p)| count_frames(p)).sum::<usize>(),
                next_offset: next,
                bytes_truncated: damaged_len - kept_len,
            });
            prop_assert_eq!(std::fs::metadata(&last_path).unwrap().len(), kept_len);
            prop_assert_eq!((log.latest_offset(), log.committed_offset()), (next, next));
            prop_assert_eq!(scan_ids(&log, 0, u64::MAX, None, 0), range(0, next));

            let appended = log.append_durable(&batch(next, 3)).unwrap();
            prop_assert_eq!(appended.first_offset, next);
            prop_assert_eq!(scan_ids(&log, 0, u64::MAX, None, 0), range(0, next + 3));
            drop(log);
            let (_, report) = reopen(dir.path());
            prop_assert_eq!((report.next_offset, report.bytes_truncated), (next + 3, 0));
        }
    }

    fn count_frames(path: &Path) -> usize {
        let file = File::open(path).unwrap();
        let base = parse_segment_file_name(path.file_name().unwrap().to_str().unwrap()).unwrap();
        validate(&file, path, base, true).unwrap().frames.len()
    }

    #[test]
    fn default_config_is_unlimited() {
        let config = LogConfig::default();
        assert_eq!(
            (
                config.segment_bytes,
                config.retention_ms,
                config.retention_bytes
            ),
            (64 << 20, None, None)
        );
    }
}
