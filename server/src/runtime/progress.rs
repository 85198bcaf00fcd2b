//! Persisted routing floors of a query's late-data stream: per source partition, the
//! offset after the last late event routed, one small file per partition, replaced
//! atomically (write a temporary file, fsync, rename), so a restart never routes an
//! event twice.

use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ProgressStore {
    dir: PathBuf,
    partitions: usize,
}

impl ProgressStore {
    pub fn open(dir: PathBuf, partitions: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(ProgressStore { dir, partitions })
    }

    fn path(&self, partition: usize) -> PathBuf {
        self.dir.join(format!("{partition}.offset"))
    }

    /// The saved offsets, 0 for partitions without a file.
    pub fn load(&self) -> std::io::Result<Vec<u64>> {
        (0..self.partitions)
            .map(|p| match std::fs::read_to_string(self.path(p)) {
                Ok(text) => text.trim().parse().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad progress file {}", self.path(p).display()),
                    )
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e),
            })
            .collect()
    }

    pub fn save(&self, partition: usize, offset: u64) -> std::io::Result<()> {
        self.write(self.path(partition), offset.to_string())
    }

    fn write(&self, path: PathBuf, text: String) -> std::io::Result<()> {
        // A unique temporary name: a write still finishing for an engine that was just
        // closed must not collide with the new one's.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(
            ".{}.tmp",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let tmp = PathBuf::from(tmp);
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProgressStore::open(dir.path().join("q"), 3).unwrap();
        assert_eq!(store.load().unwrap(), vec![0, 0, 0]);
        store.save(1, 42).unwrap();
        assert_eq!(store.load().unwrap(), vec![0, 42, 0]);
    }
}
