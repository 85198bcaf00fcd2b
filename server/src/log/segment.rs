//! One segment file: the frame format, encoding a batch into a frame, reading a frame
//! back, and validating a file at recovery. Knows nothing about other segments, locks
//! between appenders, or durability policy (see `partition.rs`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::MetadataVersion;
use arrow::ipc::reader::read_record_batch;
use arrow::ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, write_message,
};
use arrow::record_batch::RecordBatch;
use crc32fast::Hasher;
use parking_lot::RwLock;

use super::{LogError, Result};

/// First four bytes of every frame.
pub(crate) const MAGIC: [u8; 4] = *b"WLF1";
/// Bytes of the fixed frame header (layout in the module docs of `log`).
pub(crate) const HEADER_LEN: usize = 32;
/// Arrow IPC continuation marker that opens an encapsulated message.
const CONTINUATION: [u8; 4] = [0xff; 4];

/// File name of the segment whose first row has offset `base_offset`.
pub(crate) fn segment_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.seg")
}

/// The base offset encoded in a segment file name, if `name` is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The fixed-size header in front of every frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub payload_len: u32,
    pub crc: u32,
    pub base_offset: u64,
    pub rows: u32,
    pub ingest_time_ms: i64,
}

impl FrameHeader {
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        b[8..12].copy_from_slice(&self.crc.to_le_bytes());
        b[12..20].copy_from_slice(&self.base_offset.to_le_bytes());
        b[20..24].copy_from_slice(&self.rows.to_le_bytes());
        b[24..32].copy_from_slice(&self.ingest_time_ms.to_le_bytes());
        b
    }

    /// Parses a header; the error says what is wrong with it.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Self, String> {
        if b[0..4] != MAGIC {
            return Err(format!("bad magic {:02x?}", &b[0..4]));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let eight = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            a
        };
        Ok(Self {
            payload_len: u32_at(4),
            crc: u32_at(8),
            base_offset: u64::from_le_bytes(eight(12)),
            rows: u32_at(20),
            ingest_time_ms: i64::from_le_bytes(eight(24)),
        })
    }

    /// The CRC this header should carry, given the CRC state of its payload: header
    /// bytes 0..8 and 12..32, then the payload. `combine` appends the payload's CRC
    /// state, so the payload can be checksummed before its offset is known.
    fn expected_crc(self, payload: &Hasher) -> u32 {
        let bytes = self.to_bytes();
        let mut h = Hasher::new();
        h.update(&bytes[0..8]);
        h.update(&bytes[12..]);
        h.combine(payload);
        h.finalize()
    }

    /// Bytes from the start of this frame to the start of the next.
    pub fn frame_len(self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

fn write_options() -> IpcWriteOptions {
    // 8-byte alignment keeps small frames small; the reader re-aligns buffers that
    // need more (e.g. Decimal128) by copying them.
    IpcWriteOptions::try_new(8, false, MetadataVersion::V5).expect("8 is a valid IPC alignment")
}

/// A batch encoded as a frame whose header is not filled in yet.
pub(crate) struct EncodedFrame {
    /// Header space followed by the payload: written to the file in one call.
    bytes: Vec<u8>,
    payload_crc: Hasher,
    rows: u32,
}

impl EncodedFrame {
    /// Encodes and checksums `batch`; CPU work done before taking the append lock.
    pub fn encode(batch: &RecordBatch) -> Result<Self> {
        let options = write_options();
        let mut tracker = DictionaryTracker::new(true);
        let (dictionaries, message) = IpcDataGenerator::default()
            .encode(
                batch,
                &mut tracker,
                &options,
                &mut IpcWriteContext::default(),
            )
            .map_err(LogError::Encode)?;
        if !dictionaries.is_empty() {
            return Err(LogError::Unsupported("dictionary-encoded columns".into()));
        }
        let mut bytes = vec![0u8; HEADER_LEN];
        write_message(&mut bytes, message, &options).map_err(LogError::Encode)?;
        let too_large = || LogError::BatchTooLarge { bytes: bytes.len() };
        u32::try_from(bytes.len() - HEADER_LEN).map_err(|_| too_large())?;
        let rows = u32::try_from(batch.num_rows()).map_err(|_| too_large())?;
        let mut payload_crc = Hasher::new();
        payload_crc.update(&bytes[HEADER_LEN..]);
        Ok(Self {
            bytes,
            payload_crc,
            rows,
        })
    }

    /// Stamps the frame's offset and ingest time into its header.
    pub fn seal(&mut self, base_offset: u64, ingest_time_ms: i64) -> FrameHeader {
        let mut header = FrameHeader {
            payload_len: (self.bytes.len() - HEADER_LEN) as u32, // checked in `encode`
            crc: 0,
            base_offset,
            rows: self.rows,
            ingest_time_ms,
        };
        header.crc = header.expected_crc(&self.payload_crc);
        self.bytes[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        header
    }

    pub fn rows(&self) -> u32 {
        self.rows
    }
}

/// Decodes a frame payload (one encapsulated IPC record-batch message), reading only
/// the `projection` columns of `schema`.
pub(crate) fn decode_payload(
    payload: &Buffer,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
) -> Result<RecordBatch, ArrowError> {
    let bad = |what: &str| ArrowError::IpcError(format!("frame payload: {what}"));
    if payload.len() < 8 || payload[0..4] != CONTINUATION {
        return Err(bad("missing IPC continuation marker"));
    }
    let meta_len = i32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
    let meta_end = usize::try_from(meta_len)
        .ok()
        .and_then(|len| len.checked_add(8))
        .filter(|&end| end <= payload.len())
        .ok_or_else(|| bad("metadata length out of range"))?;
    let message = arrow::ipc::root_as_message(&payload[8..meta_end])
        .map_err(|e| bad(&format!("invalid IPC message: {e}")))?;
    let batch = message
        .header_as_record_batch()
        .ok_or_else(|| bad("not a record batch"))?;
    let body = payload.slice(meta_end);
    read_record_batch(
        &body,
        batch,
        schema.clone(),
        &HashMap::new(),
        projection,
        &message.version(),
    )
}

/// Where one frame is and what it holds; the in-memory index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    pub offset: u64,
    pub position: u64,
    pub payload_len: u32,
    pub rows: u32,
    pub ingest_time_ms: i64,
}

impl FrameMeta {
    fn new(position: u64, header: &FrameHeader) -> Self {
        Self {
            offset: header.base_offset,
            position,
            payload_len: header.payload_len,
            rows: header.rows,
            ingest_time_ms: header.ingest_time_ms,
        }
    }

    /// One past the frame's last offset.
    pub fn end_offset(&self) -> u64 {
        self.offset + u64::from(self.rows)
    }
}

/// An open segment file and the index of its frames.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: u64,
    path: PathBuf,
    /// One read-write handle shared by the appender, readers and the syncer. All IO is
    /// positional (`*_at`), so nobody shares a cursor. Once the file is unlinked by
    /// retention, this handle keeps it readable until the last `Arc<Segment>` drops.
    file: File,
    /// Frames in file order. Only the appender pushes (holding the partition's append
    /// lock); readers take the read lock for one lookup at a time.
    frames: RwLock<Vec<FrameMeta>>,
    /// Bytes of complete frames: where the next frame goes.
    len: AtomicU64,
}

impl Segment {
    /// Creates an empty segment file in `dir`; fails if it already exists.
    pub fn create(dir: &Path, base_offset: u64) -> Result<Self> {
        let path = dir.join(segment_file_name(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, "create segment", e))?;
        Ok(Self::from_parts(path, base_offset, file, Vec::new(), 0))
    }

    /// A segment whose file and frames were validated by recovery.
    pub fn from_parts(
        path: PathBuf,
        base_offset: u64,
        file: File,
        frames: Vec<FrameMeta>,
        len: u64,
    ) -> Self {
        Self {
            base_offset,
            path,
            file,
            frames: RwLock::new(frames),
            len: AtomicU64::new(len),
        }
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of complete frames in the file.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub fn frame_count(&self) -> usize {
        self.frames.read().len()
    }

    /// Ingest time of the newest frame, if any.
    pub fn newest_ingest_ms(&self) -> Option<i64> {
        self.frames.read().last().map(|f| f.ingest_time_ms)
    }

    /// Index of the first frame that ends after `offset` (the one holding it, if any).
    pub fn find_frame(&self, offset: u64) -> usize {
        self.frames
            .read()
            .partition_point(|f| f.end_offset() <= offset)
    }

    pub fn frame(&self, index: usize) -> Option<FrameMeta> {
        self.frames.read().get(index).copied()
    }

    /// Writes a sealed frame at the end of the file and indexes it. The caller holds
    /// the partition's append lock, so `len` cannot move underneath us.
    pub fn append(&self, frame: &EncodedFrame, header: &FrameHeader) -> Result<FrameMeta> {
        let position = self.len();
        self.file
            .write_all_at(&frame.bytes, position)
            .map_err(|e| LogError::io(&self.path, "write frame to segment", e))?;
        let meta = FrameMeta::new(position, header);
        self.frames.write().push(meta);
        self.len
            .store(position + header.frame_len(), Ordering::Release);
        Ok(meta)
    }

    /// Removes the frames at and after `offset`, which must start a frame (or be the
    /// segment's end), and makes the cut durable.
    pub fn truncate_at(&self, offset: u64) -> Result<()> {
        let mut frames = self.frames.write();
        let index = frames.partition_point(|f| f.offset < offset);
        let position = match frames.get(index) {
            Some(f) if f.offset == offset => f.position,
            None if frames.last().map_or(self.base_offset, |f| f.end_offset()) == offset => {
                return Ok(());
            }
            _ => {
                return Err(LogError::Unsupported(format!(
                    "offset {offset} is not a frame boundary in {}",
                    self.path.display()
                )));
            }
        };
        self.file
            .set_len(position)
            .map_err(|e| LogError::io(&self.path, "truncate segment", e))?;
        self.file
            .sync_all()
            .map_err(|e| LogError::io(&self.path, "fsync truncated segment", e))?;
        frames.truncate(index);
        self.len.store(position, Ordering::Release);
        Ok(())
    }

    /// Makes everything written so far durable.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io(&self.path, "fsync segment", e))
    }

    /// Reads one frame, checks its header and CRC, and returns its payload.
    /// Reads `len` bytes at `position` into a new buffer, without zeroing it first (the
    /// kernel writes every byte; a frame read is otherwise a memset plus a copy).
    fn read_uninit(
        &self,
        mut bytes: Vec<u8>,
        len: usize,
        position: u64,
    ) -> std::io::Result<Vec<u8>> {
        bytes.clear();
        // A read fills the whole spare capacity (it may read past the frame, and the
        // excess is cut below): a buffer much larger than the frame is not reused.
        if bytes.capacity() > 2 * len {
            bytes = Vec::new();
        }
        bytes.reserve(len);
        while bytes.len() < len {
            let done = bytes.len();
            // Reads into the spare capacity and extends the length by what it read.
            let read = match rustix::io::pread(
                &self.file,
                rustix::buffer::spare_capacity(&mut bytes),
                position + done as u64,
            ) {
                Ok(read) => read,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if read == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the segment ends before byte {}", position + len as u64),
                ));
            }
        }
        // The capacity may have been larger than asked for: keep just the frame.
        bytes.truncate(len);
        Ok(bytes)
    }

    #[cfg(test)]
    pub fn read_frame(&self, meta: &FrameMeta) -> Result<Buffer> {
        Ok(self.read_frame_into(meta, Vec::new())?.slice(HEADER_LEN))
    }

    /// Like [`Self::read_frame`], reading into `scratch`'s allocation, and returning the
    /// whole frame (header included) so the caller can take the allocation back with
    /// `Buffer::into_vec` once nothing refers to it.
    pub fn read_frame_into(&self, meta: &FrameMeta, scratch: Vec<u8>) -> Result<Buffer> {
        let len = HEADER_LEN + meta.payload_len as usize;
        let bytes = self
            .read_uninit(scratch, len, meta.position)
            .map_err(|e| LogError::io(&self.path, "read frame from segment", e))?;
        let corrupt = |reason: String| LogError::Corrupt {
            path: self.path.clone(),
            position: meta.position,
            reason,
        };
        let header_bytes: &[u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("length");
        let header = FrameHeader::parse(header_bytes).map_err(corrupt)?;
        if FrameMeta::new(meta.position, &header) != *meta {
            return Err(corrupt(format!(
                "header {header:?} differs from the index {meta:?}"
            )));
        }
        let mut payload_crc = Hasher::new();
        payload_crc.update(&bytes[HEADER_LEN..]);
        if header.expected_crc(&payload_crc) != header.crc {
            return Err(corrupt("CRC mismatch".into()));
        }
        Ok(Buffer::from_vec(bytes))
    }
}

/// What recovery found in one segment file.
#[derive(Debug)]
pub(crate) struct Validated {
    /// The valid frames, in order.
    pub frames: Vec<FrameMeta>,
    /// Bytes covered by the valid frames.
    pub valid_len: u64,
    /// Length of the file as found.
    pub file_len: u64,
    /// Why the first invalid frame (at `valid_len`) is invalid; `None` if all valid.
    pub damage: Option<String>,
}

/// Walks the frames of a segment file from the start, checking each header, that the
/// frame lies within the file, and that offsets continue densely from `base_offset`;
/// with `check_crc` also each payload's CRC. Stops at the first bad frame. Never trusts
/// file content: a length is only used after checking it lies within the file.
pub(crate) fn validate(
    file: &File,
    path: &Path,
    base_offset: u64,
    check_crc: bool,
) -> Result<Validated> {
    let io = |e| LogError::io(path, "read segment during recovery", e);
    let file_len = file.metadata().map_err(io)?.len();
    let mut frames = Vec::new();
    let (mut position, mut next_offset) = (0u64, base_offset);
    let mut header_bytes = [0u8; HEADER_LEN];
    let mut payload = Vec::new();
    let damage = loop {
        let left = file_len - position;
        if left == 0 {
            break None;
        }
        if left < HEADER_LEN as u64 {
            break Some(format!("torn frame header ({left} bytes)"));
        }
        file.read_exact_at(&mut header_bytes, position)
            .map_err(io)?;
        let header = match FrameHeader::parse(&header_bytes) {
            Ok(header) => header,
            Err(reason) => break Some(reason),
        };
        if header.frame_len() > left {
            break Some(format!(
                "torn frame: {} bytes declared, {left} left",
                header.frame_len()
            ));
        }
        if header.base_offset != next_offset {
            break Some(format!(
                "frame starts at offset {}, expected {next_offset}",
                header.base_offset
            ));
        }
        let Some(end_offset) = next_offset
            .checked_add(u64::from(header.rows))
            .filter(|_| header.rows > 0)
        else {
            break Some(format!("invalid row count {}", header.rows));
        };
        if check_crc {
            payload.resize(header.payload_len as usize, 0);
            file.read_exact_at(&mut payload, position + HEADER_LEN as u64)
                .map_err(io)?;
            let mut payload_crc = Hasher::new();
            payload_crc.update(&payload);
            if header.expected_crc(&payload_crc) != header.crc {
                break Some("CRC mismatch".to_string());
            }
        }
        frames.push(FrameMeta::new(position, &header));
        position += header.frame_len();
        next_offset = end_offset;
    };
    Ok(Validated {
        frames,
        valid_len: position,
        file_len,
        damage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.tmp"), None);
    }

    #[test]
    fn frame_round_trips_with_projection_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let segment = Segment::create(dir.path(), 7).unwrap();
        let batch = batch();
        let mut frame = EncodedFrame::encode(&batch).unwrap();
        let header = frame.seal(7, 1234);
        let meta = segment.append(&frame, &header).unwrap();
        assert_eq!((meta.offset, meta.rows, meta.ingest_time_ms), (7, 3, 1234));
        assert_eq!(segment.find_frame(9), 0);
        assert_eq!(segment.find_frame(10), 1);

        let payload = segment.read_frame(&meta).unwrap();
        let schema = batch.schema();
        assert_eq!(decode_payload(&payload, &schema, None).unwrap(), batch);
        let name_only = decode_payload(&payload, &schema, Some(&[1])).unwrap();
        assert_eq!(name_only, batch.project(&[1]).unwrap());

        let v = validate(&segment.file, segment.path(), 7, true).unwrap();
        assert_eq!(
            (v.frames, v.valid_len, v.damage),
            (vec![meta], segment.len(), None)
        );

        // Flip the last payload byte: both the reader and recovery notice.
        let last = segment.len() - 1;
        let mut byte = [0u8];
        segment.file.read_exact_at(&mut byte, last).unwrap();
        segment.file.write_all_at(&[byte[0] ^ 1], last).unwrap();
        assert!(matches!(
            segment.read_frame(&meta),
            Err(LogError::Corrupt { .. })
        ));
        let v = validate(&segment.file, segment.path(), 7, true).unwrap();
        assert_eq!(
            (v.frames.len(), v.valid_len, v.damage.as_deref()),
            (0, 0, Some("CRC mismatch"))
        );
    }

    #[test]
    fn garbage_payload_is_an_error_not_a_panic() {
        let schema = batch().schema();
        for bytes in [
            vec![],
            vec![0xff; 8],
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ] {
            assert!(decode_payload(&Buffer::from_vec(bytes), &schema, None).is_err());
        }
    }
}
