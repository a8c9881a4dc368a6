//! The IDX format of (Fashion-)MNIST: a big-endian header `0x00 0x00 <type> <rank>`, one u32
//! per dimension, then the raw values. Only unsigned bytes (type 0x08) occur in these
//! datasets. Files may be gzip-compressed (detected from the magic bytes, not the name).
//! Our own reader: candle-datasets cannot read `.gz` and pulls in parquet and arrow.

use std::io::{Read, Write};
use std::path::Path;

use ember_core::{EmberError, Result};

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Reads a plain or gzip-compressed IDX file of unsigned bytes.
    pub fn read(path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).map_err(|e| EmberError::io(path, e))?;
        Self::from_bytes(&raw).map_err(|msg| bad(path, &msg))
    }

    /// Parses plain or gzip-compressed IDX bytes; the error says what is wrong.
    pub fn from_bytes(raw: &[u8]) -> std::result::Result<Self, String> {
        if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw)
                .read_to_end(&mut out)
                .map_err(|e| format!("corrupt gzip stream ({e})"))?;
            Self::parse(&out)
        } else {
            Self::parse(raw)
        }
    }

    fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
            return Err("not an IDX file (bad magic number)".into());
        }
        if bytes[2] != 0x08 {
            return Err(format!(
                "IDX element type 0x{:02x} is not unsigned byte",
                bytes[2]
            ));
        }
        let rank = bytes[3] as usize;
        let header = 4 + 4 * rank;
        if bytes.len() < header {
            return Err("truncated IDX header".into());
        }
        let dims: Vec<usize> = bytes[4..header]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect();
        let count: usize = dims.iter().product();
        let body = &bytes[header..];
        if body.len() != count {
            return Err(format!(
                "IDX body holds {} bytes, its header promises {count}",
                body.len()
            ));
        }
        Ok(Self {
            dims,
            data: body.to_vec(),
        })
    }

    /// The gzip-compressed IDX encoding of this array.
    pub fn to_gz_bytes(&self) -> Vec<u8> {
        let mut raw = vec![0, 0, 0x08, self.dims.len() as u8];
        for &d in &self.dims {
            raw.extend_from_slice(&(d as u32).to_be_bytes());
        }
        raw.extend_from_slice(&self.data);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).expect("writing to memory cannot fail");
        gz.finish().expect("writing to memory cannot fail")
    }
}

fn bad(path: &Path, msg: &str) -> EmberError {
    EmberError::bad_input(format!("{}: {msg}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_gzip_and_reads_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = IdxArray {
            dims: vec![2, 3],
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let gz = dir.path().join("a.gz");
        std::fs::write(&gz, a.to_gz_bytes()).unwrap();
        assert_eq!(IdxArray::read(&gz).unwrap(), a);
        let plain = dir.path().join("a-idx2-ubyte");
        std::fs::write(
            &plain,
            [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6],
        )
        .unwrap();
        assert_eq!(IdxArray::read(&plain).unwrap(), a);
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[u8], &str); 3] = [
            (&[0, 0, 8, 1, 0, 0, 0, 5, 1, 2], "header promises 5"),
            (b"PNG....", "bad magic"),
            (
                &[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0],
                "not unsigned byte",
            ),
        ];
        for (bytes, msg) in cases {
            let p = dir.path().join("x");
            std::fs::write(&p, bytes).unwrap();
            let err = IdxArray::read(&p).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(msg), "{err}");
        }
    }
}
