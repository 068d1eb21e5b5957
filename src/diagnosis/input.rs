//! Inputs of `c1m analyze`: turn the paths on the command line (files,
//! directories walked recursively in name order, `-` for stdin) into byte
//! streams, decompressing gzip when the file starts with its magic bytes,
//! and read them line by line without ever decoding them as UTF-8. Logs are
//! bytes: a terminal capture can hold anything, and a parser that insists on
//! text gives up exactly where the interesting part starts.
//!
//! The line reader reuses one buffer, so memory stays flat whatever the file
//! size; a line longer than [`MAX_LINE`] is cut there (the rest is counted,
//! not kept), so a file without newlines cannot grow memory either.
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// The longest line kept; longer lines are cut (and counted as corrupted).
pub const MAX_LINE: usize = 64 * 1024;

const READ_BUF: usize = 256 * 1024;

/// One input to analyze: a display name and how to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// The name used in evidence (`file:line`).
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }

    /// Open for reading, transparently gunzipping.
    pub fn open(&self) -> io::Result<Box<dyn BufRead + Send>> {
        let raw: Box<dyn Read + Send> = match self {
            Input::Stdin => Box::new(io::stdin()),
            Input::File(p) => Box::new(File::open(p)?),
        };
        let mut reader = BufReader::with_capacity(READ_BUF, raw);
        let head = reader.fill_buf()?;
        if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
            Ok(Box::new(BufReader::with_capacity(
                READ_BUF,
                MultiGzDecoder::new(reader),
            )))
        } else {
            Ok(Box::new(reader))
        }
    }
}

/// An input that could not be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub path: String,
    pub error: String,
}

/// Expand the command-line paths: `-` is stdin, a directory is walked
/// recursively (entries sorted by name, hidden files skipped), a file is
/// itself. Paths that do not exist or cannot be listed become errors; the
/// others are still returned.
pub fn expand(paths: &[PathBuf]) -> (Vec<Input>, Vec<InputError>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        walk(p, &mut inputs, &mut errors);
    }
    (inputs, errors)
}

fn walk(p: &Path, inputs: &mut Vec<Input>, errors: &mut Vec<InputError>) {
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) => {
            errors.push(InputError {
                path: p.display().to_string(),
                error: e.to_string(),
            });
            return;
        }
    };
    if !meta.is_dir() {
        inputs.push(Input::File(p.to_path_buf()));
        return;
    }
    let entries = match std::fs::read_dir(p) {
        Ok(rd) => rd,
        Err(e) => {
            errors.push(InputError {
                path: p.display().to_string(),
                error: format!("cannot list directory: {e}"),
            });
            return;
        }
    };
    let mut children: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                let name = e.file_name();
                if !name.to_string_lossy().starts_with('.') {
                    children.push(e.path());
                }
            }
            Err(e) => errors.push(InputError {
                path: p.display().to_string(),
                error: format!("cannot list directory: {e}"),
            }),
        }
    }
    children.sort();
    for c in children {
        walk(&c, inputs, errors);
    }
}

/// Reads lines as byte slices straight out of the reader's buffer; only a
/// line that spans two reads is copied (into one reused buffer).
pub struct LineReader<R> {
    inner: R,
    carry: Vec<u8>,
    carrying: bool,
    carry_cut: u64,
}

/// Facts about the line just read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineMeta {
    /// Bytes of the line beyond MAX_LINE that were dropped.
    pub cut_bytes: u64,
    /// The line had no terminating newline (the input ended).
    pub unterminated: bool,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            carry: Vec::with_capacity(256),
            carrying: false,
            carry_cut: 0,
        }
    }

    /// Call `f` with every line (without its `\n`; a trailing `\r` is
    /// kept, parsers trim it) until the end of the input or a read error.
    pub fn for_each_line(&mut self, mut f: impl FnMut(&[u8], LineMeta)) -> io::Result<()> {
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if self.carrying {
                    let meta = LineMeta {
                        cut_bytes: self.carry_cut,
                        unterminated: true,
                    };
                    f(&self.carry, meta);
                    self.carry.clear();
                    self.carrying = false;
                    self.carry_cut = 0;
                }
                return Ok(());
            }
            let n = chunk.len();
            let mut start = 0;
            while let Some(i) = find_byte(b'\n', &chunk[start..]) {
                let end = start + i;
                let piece = &chunk[start..end];
                if self.carrying {
                    let room = MAX_LINE.saturating_sub(self.carry.len());
                    let take = piece.len().min(room);
                    self.carry.extend_from_slice(&piece[..take]);
                    let meta = LineMeta {
                        cut_bytes: self.carry_cut + (piece.len() - take) as u64,
                        unterminated: false,
                    };
                    f(&self.carry, meta);
                    self.carry.clear();
                    self.carrying = false;
                    self.carry_cut = 0;
                } else if piece.len() > MAX_LINE {
                    let meta = LineMeta {
                        cut_bytes: (piece.len() - MAX_LINE) as u64,
                        unterminated: false,
                    };
                    f(&piece[..MAX_LINE], meta);
                } else {
                    f(piece, LineMeta::default());
                }
                start = end + 1;
            }
            if start < n {
                let piece = &chunk[start..];
                let room = MAX_LINE.saturating_sub(self.carry.len());
                let take = piece.len().min(room);
                self.carry.extend_from_slice(&piece[..take]);
                self.carry_cut += (piece.len() - take) as u64;
                self.carrying = true;
            }
            self.inner.consume(n);
        }
    }
}

/// Position of `needle` in `hay`: a word-at-a-time scan (the classic
/// "has zero byte" trick), several times faster than a byte loop and
/// without an extra crate.
#[inline]
pub fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(needle as u64);
    let mut i = 0;
    let n = hay.len();
    while i + 8 <= n {
        let mut word = [0u8; 8];
        word.copy_from_slice(&hay[i..i + 8]);
        let x = u64::from_le_bytes(word) ^ pattern;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == needle).map(|p| p + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_a_plain_search() {
        let hay: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        for needle in 0..=255u8 {
            for start in 0..20 {
                assert_eq!(
                    find_byte(needle, &hay[start..]),
                    hay[start..].iter().position(|&b| b == needle)
                );
            }
        }
    }

    fn lines(data: &[u8], cap: usize) -> Vec<(Vec<u8>, LineMeta)> {
        let mut out = Vec::new();
        LineReader::new(BufReader::with_capacity(cap, data))
            .for_each_line(|l, m| out.push((l.to_vec(), m)))
            .unwrap();
        out
    }

    #[test]
    fn lines_are_bytes_cut_long_and_flag_the_unterminated_last() {
        let mut data = b"one\r\ntwo \xff\xfe\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend_from_slice(b"\n\nlast");
        for cap in [7, 100, 1 << 20] {
            let got = lines(&data, cap);
            assert_eq!(got.len(), 5, "cap {cap}");
            let plain = LineMeta::default();
            assert_eq!(got[0], (b"one\r".to_vec(), plain));
            assert_eq!(got[1], (b"two \xff\xfe".to_vec(), plain));
            assert_eq!(got[2].0.len(), MAX_LINE);
            assert_eq!(got[2].1.cut_bytes, 10);
            assert_eq!(got[3], (Vec::new(), plain));
            assert_eq!(got[4].0, b"last");
            assert!(got[4].1.unterminated);
        }
        assert!(lines(b"", 8).is_empty());
        assert_eq!(lines(b"\n", 8), vec![(Vec::new(), LineMeta::default())]);
    }

    #[test]
    fn gzip_is_detected_by_magic() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"connections: 999, sockfd:1002, time_used:1241\n")
            .unwrap();
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
        let mut got = Vec::new();
        LineReader::new(Input::File(path).open().unwrap())
            .for_each_line(|l, _| got.push(l.to_vec()))
            .unwrap();
        assert_eq!(
            got,
            vec![b"connections: 999, sockfd:1002, time_used:1241".to_vec()]
        );
    }

    #[test]
    fn missing_paths_are_errors_and_directories_are_walked_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.log"), "x").unwrap();
        std::fs::write(dir.path().join("sub/a.log"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let missing = dir.path().join("nope.log");
        let (inputs, errors) = expand(&[dir.path().to_path_buf(), missing.clone()]);
        let names: Vec<String> = inputs.iter().map(|i| i.name()).collect();
        assert_eq!(names.len(), 2);
        assert!(names[0].ends_with("b.log") && names[1].ends_with("sub/a.log"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, missing.display().to_string());
    }
}
