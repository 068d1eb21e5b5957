//! Inputs of `c1m analyze`: turn the paths on the command line (files,
//! directories walked recursively in name order, `-` for stdin) into byte
//! streams (a walk follows links but reads each file once and leaves out
//! FIFOs, sockets and devices, so a hostile tree cannot loop or hang it), decompressing gzip when the file starts with its magic bytes,
//! and read them line by line without ever decoding them as UTF-8. Logs are
//! bytes: a terminal capture can hold anything, and a parser that insists on
//! text gives up exactly where the interesting part starts.
//!
//! [`read_batches`] reads blocks into recycled batch buffers, so memory
//! stays flat whatever the file size; a line longer than [`MAX_LINE`] is cut
//! there (the rest is counted, not kept), so a file without newlines cannot
//! grow memory either; a batch holds at most `block / 32` lines, so a file of
//! empty lines cannot either. A read error keeps every complete line read
//! before it.
use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// The longest line kept; longer lines are cut (and counted as corrupted).
pub const MAX_LINE: usize = 64 * 1024;

const READ_BUF: usize = 256 * 1024;

/// One input to analyze: a display name and how to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    /// A path named on the command line: read whatever it is (a FIFO too).
    File(PathBuf),
    /// A regular file found by walking a directory: opened without
    /// blocking and refused unless it is still a regular file, so a FIFO
    /// swapped in after the walk cannot hang the analysis.
    Found(PathBuf),
}

impl Input {
    /// The name used in evidence (`file:line`).
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".to_string(),
            Input::File(p) | Input::Found(p) => p.display().to_string(),
        }
    }

    /// Open for reading, transparently gunzipping.
    pub fn open(&self) -> io::Result<Box<dyn BufRead + Send>> {
        let raw: Box<dyn Read + Send> = match self {
            Input::Stdin => Box::new(io::stdin()),
            Input::File(p) => Box::new(File::open(p)?),
            Input::Found(p) => Box::new(open_regular(p)?),
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

/// Open `p` only if it is a regular file: O_NONBLOCK so that opening a FIFO
/// does not wait for a writer, then fstat on the open descriptor (no race
/// with a rename), then back to blocking reads.
pub fn open_regular(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)?;
    let kind = f.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::other(format!(
            "not a regular file ({})",
            kind_name(&kind)
        )));
    }
    let fd = std::os::fd::AsFd::as_fd(&f);
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(f)
}

/// What a file that is not a regular file or a directory is, in words.
fn kind_name(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// An input that could not be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub path: String,
    pub error: String,
}

/// What the command line named, expanded: the inputs to read, the paths
/// that could not be used (errors), and the paths a directory walk left
/// out on purpose, with the reason (notes, not errors).
#[derive(Debug, Default)]
pub struct Expanded {
    pub inputs: Vec<Input>,
    pub errors: Vec<InputError>,
    pub skipped: Vec<InputError>,
}

/// Expand the command-line paths: `-` is stdin, a directory is walked
/// recursively (entries sorted by name, hidden files skipped), anything
/// else named is itself (a FIFO too: it was asked for). The walk follows
/// symbolic links but enters each directory and reads each file once (by
/// device and inode), so a `self -> .` link or a loop of links ends; it
/// skips FIFOs, sockets and devices it finds, saying so, since reading them
/// could block forever or never end. Paths that do not exist or cannot be
/// listed become errors; the others are still returned.
pub fn expand(paths: &[PathBuf]) -> Expanded {
    let mut out = Expanded::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.inputs.push(Input::Stdin);
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &m, &mut seen, &mut out),
            Ok(m) => {
                if seen.insert((m.dev(), m.ino())) {
                    out.inputs.push(Input::File(p.to_path_buf()));
                }
            }
            Err(e) => out.errors.push(InputError {
                path: p.display().to_string(),
                error: e.to_string(),
            }),
        }
    }
    out
}

/// Walk directory `dir` (whose metadata is `meta`) into `out`.
fn walk(dir: &Path, meta: &Metadata, seen: &mut HashSet<(u64, u64)>, out: &mut Expanded) {
    if !seen.insert((meta.dev(), meta.ino())) {
        out.skipped.push(InputError {
            path: dir.display().to_string(),
            error: "directory already walked (a symbolic link loop or a second link to it)".into(),
        });
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            out.errors.push(InputError {
                path: dir.display().to_string(),
                error: format!("cannot list directory: {e}"),
            });
            return;
        }
    };
    let mut children: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                if !e.file_name().as_bytes().starts_with(b".") {
                    children.push(e.path());
                }
            }
            Err(e) => out.errors.push(InputError {
                path: dir.display().to_string(),
                error: format!("cannot list directory: {e}"),
            }),
        }
    }
    children.sort();
    for c in children {
        // Follows links; a dangling one is an error worth saying.
        let m = match std::fs::metadata(&c) {
            Ok(m) => m,
            Err(e) => {
                out.errors.push(InputError {
                    path: c.display().to_string(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        let kind = m.file_type();
        if kind.is_dir() {
            walk(&c, &m, seen, out);
        } else if !kind.is_file() {
            out.skipped.push(InputError {
                path: c.display().to_string(),
                error: format!(
                    "{}: only read when named on the command line",
                    kind_name(&kind)
                ),
            });
        } else if seen.insert((m.dev(), m.ino())) {
            out.inputs.push(Input::Found(c));
        }
    }
}

/// Facts about the line just read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineMeta {
    /// Bytes of the line beyond MAX_LINE that were dropped.
    pub cut_bytes: u64,
    /// The line had no terminating newline (the input ended).
    pub unterminated: bool,
}

/// Whole lines read straight into one buffer (newlines included), where
/// each line ends, and a tag per line computed by the reading thread.
pub struct Batch<T> {
    /// The bytes read are `data[..filled]`; the rest is room for the next
    /// reads, kept initialized so that a recycled batch is read into
    /// directly, never zeroed again.
    data: Vec<u8>,
    filled: usize,
    /// End of each line in `data` (its `\n`, or the end for the last line
    /// of the input); a line starts one byte after the previous end.
    pub spans: Vec<(u32, T)>,
    /// The few lines that were cut or unterminated: (index, meta).
    pub metas: Vec<(usize, LineMeta)>,
}

impl<T> Batch<T> {
    pub fn with_capacity(bytes: usize) -> Batch<T> {
        Batch {
            // Zeroed by the allocator (fresh pages), touched only when read into.
            data: vec![0; bytes + READ_CHUNK],
            filled: 0,
            spans: Vec::with_capacity(bytes / 32 + 1),
            metas: Vec::new(),
        }
    }

    pub fn clear(&mut self) {
        self.filled = 0;
        self.spans.clear();
        self.metas.clear();
    }

    /// Bytes of the input the batch's lines took: each line, its newline
    /// (also counted for an unterminated last line) and the bytes cut off
    /// it.
    pub fn bytes(&self) -> u64 {
        let Some(&(last, _)) = self.spans.last() else {
            return 0;
        };
        let cut: u64 = self.metas.iter().map(|(_, m)| m.cut_bytes).sum();
        (u64::from(last) + 1).saturating_add(cut)
    }

    /// The bytes of the batch's lines (`for_each_at`'s offsets are in it).
    pub fn data(&self) -> &[u8] {
        &self.data[..self.filled]
    }

    /// Every line with its meta and tag.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], LineMeta, &T)) {
        self.for_each_at(|line, _, meta, tag| f(line, meta, tag));
    }

    /// Every line with where it starts in [`Batch::data`], its meta and tag.
    pub fn for_each_at(&self, mut f: impl FnMut(&[u8], usize, LineMeta, &T)) {
        let mut start = 0usize;
        let mut metas = self.metas.iter().peekable();
        for (i, (end, tag)) in self.spans.iter().enumerate() {
            let end = *end as usize;
            let meta = match metas.peek() {
                Some(&&(at, m)) if at == i => {
                    metas.next();
                    m
                }
                _ => LineMeta::default(),
            };
            f(&self.data[start..end], start, meta, tag);
            start = end + 1;
        }
    }

    /// Start an empty batch with `bytes` (a line carried over).
    fn carry(&mut self, bytes: &[u8]) {
        if self.data.len() < bytes.len() {
            self.data.resize(bytes.len(), 0);
        }
        self.data[..bytes.len()].copy_from_slice(bytes);
        self.filled = bytes.len();
    }

    /// One `read` of at most `want` bytes onto the end of the batch (after
    /// EINTR, retried): the bytes read, 0 at the end of the input.
    fn read_from(&mut self, reader: &mut impl Read, want: usize) -> io::Result<usize> {
        let end = self.filled + want;
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        loop {
            match reader.read(&mut self.data[self.filled..end]) {
                Ok(n) => {
                    self.filled += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Bytes asked of the reader at once. As large as the input's `BufReader`
/// ([`READ_BUF`]), so that reads go around its buffer, straight from the
/// kernel into the batch (one copy, not two); a batch cut short by its line
/// cap carries at most this much over.
const READ_CHUNK: usize = READ_BUF;

/// Read `reader` in blocks of `block` bytes straight into batch buffers (one
/// copy from the kernel, none per line), split them into lines, tag each
/// line with `tag`, and hand each full batch to `send` (which returns false
/// to stop). `fresh` supplies empty batches (recycled ones, ideally). Lines
/// longer than MAX_LINE are cut there, the rest counted in their meta. A
/// batch holds at most `block / 32` lines (short lines cost their span more
/// than their bytes). On a read error, the complete lines read before it
/// are handed over first, then the error is returned.
pub fn read_batches<R: Read, T>(
    reader: R,
    block: usize,
    tag: impl Fn(&[u8], &LineMeta) -> T,
    fresh: impl FnMut() -> Batch<T>,
    send: impl FnMut(Batch<T>) -> bool,
) -> io::Result<()> {
    read_batches_probing(reader, block, |_| None, tag, fresh, send)
}

/// [`read_batches`], trying `probe` first at each line start: given the
/// bytes from there to the end of what was read, it returns the length of
/// the line when it recognises a whole line (a `\n` at that length, which
/// must be at most [`MAX_LINE`]) and the line's tag, so that the line needs
/// no newline search; `tag` tags the other lines.
pub fn read_batches_probing<R: Read, T>(
    mut reader: R,
    block: usize,
    probe: impl Fn(&[u8]) -> Option<(usize, T)>,
    tag: impl Fn(&[u8], &LineMeta) -> T,
    mut fresh: impl FnMut() -> Batch<T>,
    mut send: impl FnMut(Batch<T>) -> bool,
) -> io::Result<()> {
    let max_lines = (block / 32).max(1);
    let chunk = block.clamp(1, READ_CHUNK);
    let mut batch = fresh();
    // Start of the current, not yet terminated line in batch.data.
    let mut line_start = 0usize;
    // Bytes of an over-long line dropped so far (its kept part is in data).
    let mut dropped: u64 = 0;
    loop {
        let before = batch.filled;
        let (read, failed) = match batch.read_from(&mut reader, chunk) {
            Ok(n) => (n, None),
            Err(e) => (0, Some(e)),
        };
        if read == 0 && failed.is_none() {
            // End of input: a last line without newline.
            if batch.filled > line_start || dropped > 0 {
                let meta = LineMeta {
                    cut_bytes: dropped,
                    unterminated: true,
                };
                let end = batch.filled;
                let t = tag(&batch.data[line_start..end], &meta);
                batch.metas.push((batch.spans.len(), meta));
                batch.spans.push((end as u32, t));
            }
            if !batch.spans.is_empty() {
                send(batch);
            }
            return Ok(());
        }
        let mut pos = before;
        loop {
            // A line the probe recognises whole (only at a line start: a
            // line begun in an earlier read is searched for its end).
            let probed = if pos == line_start && dropped == 0 {
                let rest = &batch.data[pos..batch.filled];
                probe(rest).filter(|&(len, _)| len <= MAX_LINE && rest.get(len) == Some(&b'\n'))
            } else {
                None
            };
            let (nl, t) = match probed {
                Some((len, t)) => (pos + len, t),
                None => {
                    let Some(i) = find_byte(b'\n', &batch.data[pos..batch.filled]) else {
                        break;
                    };
                    let mut nl = pos + i;
                    if nl - line_start > MAX_LINE {
                        // The end of an over-long line: drop what exceeds
                        // MAX_LINE.
                        let excess = nl - line_start - MAX_LINE;
                        batch
                            .data
                            .copy_within(nl..batch.filled, line_start + MAX_LINE);
                        batch.filled -= excess;
                        dropped += excess as u64;
                        nl -= excess;
                    }
                    let meta = LineMeta {
                        cut_bytes: dropped,
                        unterminated: false,
                    };
                    let t = tag(&batch.data[line_start..nl], &meta);
                    if dropped > 0 {
                        batch.metas.push((batch.spans.len(), meta));
                        dropped = 0;
                    }
                    (nl, t)
                }
            };
            batch.spans.push((nl as u32, t));
            pos = nl + 1;
            line_start = pos;
            if batch.spans.len() >= max_lines {
                // Full of short lines: hand it over, carry the rest.
                let mut next = fresh();
                next.carry(&batch.data[line_start..batch.filled]);
                batch.filled = line_start;
                let full = std::mem::replace(&mut batch, next);
                pos = 0;
                line_start = 0;
                if !send(full) {
                    return Ok(());
                }
            }
        }
        // An over-long partial line: keep MAX_LINE bytes, drop the rest.
        let partial = batch.filled - line_start;
        if partial > MAX_LINE {
            dropped += (partial - MAX_LINE) as u64;
            batch.filled = line_start + MAX_LINE;
        }
        if let Some(e) = failed {
            // Every complete line read so far goes out before the error;
            // the partial line after them is not a line.
            if !batch.spans.is_empty() {
                send(batch);
            }
            return Err(e);
        }
        if batch.filled >= block {
            // Hand over the complete lines; carry the partial one over.
            let mut next = fresh();
            next.carry(&batch.data[line_start..batch.filled]);
            batch.filled = line_start;
            let full = std::mem::replace(&mut batch, next);
            line_start = 0;
            if !full.spans.is_empty() && !send(full) {
                return Ok(());
            }
        }
    }
}

/// Position of `needle` in `hay` (memchr's SIMD search).
#[inline]
pub fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simple line reader (one line at a time through a callback): the
    /// reference `read_batches` is tested against. Reads lines as byte
    /// slices straight out of the reader's buffer; only a
    /// line that spans two reads is copied (into one reused buffer).
    struct LineReader<R> {
        inner: R,
        carry: Vec<u8>,
        carrying: bool,
        carry_cut: u64,
    }

    impl<R: BufRead> LineReader<R> {
        fn new(inner: R) -> Self {
            LineReader {
                inner,
                carry: Vec::with_capacity(256),
                carrying: false,
                carry_cut: 0,
            }
        }

        /// Call `f` with every line (without its `\n`; a trailing `\r` is
        /// kept, parsers trim it) until the end of the input or a read error.
        fn for_each_line(&mut self, mut f: impl FnMut(&[u8], LineMeta)) -> io::Result<()> {
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
    fn batches_hold_the_same_lines_as_the_line_reader() {
        let mut data = b"one\r\ntwo \xff\xfe\n\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend_from_slice(b"\nmid\n");
        data.extend(std::iter::repeat_n(b'y', 3 * MAX_LINE));
        data.extend_from_slice(b"\nlast");
        for block in [1, 5, 64, 4096, MAX_LINE + 3, 1 << 20] {
            let mut got = Vec::new();
            read_batches(
                &data[..],
                block,
                |l, _| l.len(),
                || Batch::with_capacity(block),
                |b| {
                    b.for_each(|l, m, t| {
                        assert_eq!(*t, l.len());
                        got.push((l.to_vec(), m));
                    });
                    true
                },
            )
            .unwrap();
            let want = lines(&data, 1000);
            let shape = |v: &Vec<(Vec<u8>, LineMeta)>| {
                v.iter()
                    .map(|(l, m)| (l.len(), l.first().copied(), *m))
                    .collect::<Vec<_>>()
            };
            assert_eq!(shape(&got), shape(&want), "block {block}");
            assert!(got == want, "block {block}: same shape, different bytes");
        }
        let mut none = 0;
        read_batches(
            &b""[..],
            8,
            |_, _| (),
            || Batch::with_capacity(8),
            |_| {
                none += 1;
                true
            },
        )
        .unwrap();
        assert_eq!(none, 0);
    }

    #[test]
    fn a_probe_splits_the_lines_it_recognises_as_the_newline_search_does() {
        let mut data = b"ab\nrecord\n\nrecord\r\nx".to_vec();
        data.extend(std::iter::repeat_n(b'r', MAX_LINE + 10));
        data.extend_from_slice(b"\nrecord\nrecord");
        // Recognises `record` lines (and claims too much of anything else,
        // which the reader must not believe).
        let probe = |s: &[u8]| {
            Some(match s.strip_prefix(b"record") {
                Some(_) => (6, 1u8),
                None => (s.len(), 1u8),
            })
        };
        for block in [1, 5, 64, 4096, 1 << 20] {
            let mut got = Vec::new();
            read_batches_probing(
                &data[..],
                block,
                probe,
                |_, _| 0u8,
                || Batch::with_capacity(block),
                |b| {
                    b.for_each(|l, m, t| got.push((l.to_vec(), m, *t)));
                    true
                },
            )
            .unwrap();
            let want = lines(&data, 1000);
            let lines: Vec<(Vec<u8>, LineMeta)> =
                got.iter().map(|(l, m, _)| (l.clone(), *m)).collect();
            assert!(lines == want, "block {block}");
            let probed: Vec<&[u8]> = got
                .iter()
                .filter(|(_, _, t)| *t == 1)
                .map(|(l, _, _)| &l[..])
                .collect();
            // Each `record` line whole in one read; none that is not one.
            assert!(probed.iter().all(|l| *l == b"record"), "block {block}");
            if block >= 64 {
                assert!(!probed.is_empty(), "block {block}");
            }
        }
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
        let Expanded { inputs, errors, .. } = expand(&[dir.path().to_path_buf(), missing.clone()]);
        let names: Vec<String> = inputs.iter().map(|i| i.name()).collect();
        assert_eq!(names.len(), 2);
        assert!(names[0].ends_with("b.log") && names[1].ends_with("sub/a.log"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, missing.display().to_string());
    }

    /// Reads `data` in pieces of 7 bytes, then fails.
    struct FailsAfter<'a> {
        data: &'a [u8],
    }

    impl Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Err(io::Error::other("corrupt deflate stream"));
            }
            let n = buf.len().min(7).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_keeps_every_complete_line_before_it() {
        let data = b"one\ntwo\nthree\nhalf a li";
        for block in [4, 64, 1 << 20] {
            let mut got = Vec::new();
            let r = read_batches(
                FailsAfter { data },
                block,
                |_, _| (),
                || Batch::with_capacity(block),
                |b| {
                    b.for_each(|l, _, _| got.push(l.to_vec()));
                    true
                },
            );
            assert_eq!(r.unwrap_err().to_string(), "corrupt deflate stream");
            assert_eq!(got, [&b"one"[..], b"two", b"three"], "block {block}");
        }
    }

    #[test]
    fn batches_of_short_lines_are_capped_in_lines() {
        let data = vec![b'\n'; 100_000];
        let block = 4096;
        let (mut lines, mut batches) = (0, 0);
        read_batches(
            &data[..],
            block,
            |_, _| (),
            || Batch::with_capacity(block),
            |b| {
                assert!(b.spans.len() <= block / 32, "{} lines", b.spans.len());
                lines += b.spans.len();
                batches += 1;
                true
            },
        )
        .unwrap();
        assert_eq!(lines, 100_000);
        assert!(batches >= 100_000 / (block / 32));
    }
}
