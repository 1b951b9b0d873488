//! Replication streams on the wire: a writer that frames ops and hashes every byte, and
//! a reader that checks each frame as it arrives and the whole at the `End` frame (its
//! count, length and BLAKE3). The frames themselves are the format crate's.

use std::io::{Read, Write};

use gpufs_format::send::{SendOp, StreamHeader, FRAME_HEADER_LEN, MAX_PAYLOAD, STREAM_HEADER_LEN};
use gpufs_format::FormatError;

/// Writes a stream: the header, then ops, then [`StreamWriter::finish`].
pub struct StreamWriter<'a> {
    out: &'a mut dyn Write,
    hasher: blake3::Hasher,
    frames: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl<'a> StreamWriter<'a> {
    /// Starts a stream on `out` with `header`.
    pub fn new(out: &'a mut dyn Write, header: &StreamHeader) -> std::io::Result<Self> {
        let mut w = StreamWriter {
            out,
            hasher: blake3::Hasher::new(),
            frames: 0,
            bytes: 0,
            buf: Vec::with_capacity(1 << 16),
        };
        let head = header.encode();
        w.emit(&head)?;
        Ok(w)
    }

    fn emit(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// Writes one op.
    pub fn op(&mut self, op: &SendOp) -> std::io::Result<()> {
        debug_assert!(!matches!(op, SendOp::End { .. }));
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        op.encode(&mut buf);
        let r = self.emit(&buf);
        self.buf = buf;
        self.frames += 1;
        r
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes the `End` frame and flushes; returns (frames, bytes) of the whole stream.
    pub fn finish(self) -> std::io::Result<(u64, u64)> {
        let end = SendOp::End {
            frames: self.frames,
            bytes: self.bytes,
            hash: *self.hasher.finalize().as_bytes(),
        };
        let mut buf = Vec::new();
        end.encode(&mut buf);
        self.out.write_all(&buf)?;
        self.out.flush()?;
        Ok((self.frames + 1, self.bytes + buf.len() as u64))
    }
}

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Not a stream, a stream of another version, or damaged or cut short.
    #[error("{0}")]
    Damaged(String),
    /// Reading the stream failed.
    #[error("reading the stream: {0}")]
    Io(std::io::Error),
}

impl From<FormatError> for StreamError {
    fn from(e: FormatError) -> Self {
        StreamError::Damaged(e.to_string())
    }
}

/// Reads a stream, op by op, checking as it goes.
pub struct StreamReader<R: Read> {
    input: R,
    hasher: blake3::Hasher,
    frames: u64,
    bytes: u64,
    ended: bool,
    payload: Vec<u8>,
}

/// Reads exactly `buf.len()` bytes; a stream that ends first is damaged (cut short).
fn read_exact(input: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), StreamError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            StreamError::Damaged(format!("the stream ends inside {what} (truncated)"))
        }
        _ => StreamError::Io(e),
    })
}

impl<R: Read> StreamReader<R> {
    /// Reads and checks the header.
    pub fn open(mut input: R) -> Result<(Self, StreamHeader), StreamError> {
        let mut raw = [0u8; STREAM_HEADER_LEN];
        read_exact(&mut input, &mut raw, "its header")?;
        let header = StreamHeader::decode(&raw)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&raw);
        let reader = StreamReader {
            input,
            hasher,
            frames: 0,
            bytes: STREAM_HEADER_LEN as u64,
            ended: false,
            payload: Vec::new(),
        };
        Ok((reader, header))
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Frames read so far (the end not counted).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The next op; `None` after a verified `End` (and nothing after it).
    pub fn next_op(&mut self) -> Result<Option<SendOp>, StreamError> {
        if self.ended {
            return Ok(None);
        }
        let mut raw = [0u8; FRAME_HEADER_LEN];
        read_exact(&mut self.input, &mut raw, "a frame header")?;
        let head = SendOp::check_header(&raw)?;
        debug_assert!(head.len as usize <= MAX_PAYLOAD);
        self.payload.resize(head.len as usize, 0);
        read_exact(&mut self.input, &mut self.payload, "a frame")?;
        let op = SendOp::decode(&head, &self.payload)?;
        if let SendOp::End {
            frames,
            bytes,
            hash,
        } = &op
        {
            let ours = *self.hasher.finalize().as_bytes();
            if (*frames, *bytes, *hash) != (self.frames, self.bytes, ours) {
                return Err(StreamError::Damaged(format!(
                    "the stream's end does not match what came before it ({} frames, {} bytes \
                     read; it says {frames} frames, {bytes} bytes{})",
                    self.frames,
                    self.bytes,
                    if *hash == ours {
                        ""
                    } else {
                        ", and another hash"
                    }
                )));
            }
            let mut extra = [0u8; 1];
            match self.input.read(&mut extra) {
                Ok(0) => {}
                Ok(_) => return Err(StreamError::Damaged("bytes follow the stream's end".into())),
                Err(e) => return Err(StreamError::Io(e)),
            }
            self.ended = true;
            return Ok(None);
        }
        self.hasher.update(&raw);
        self.hasher.update(&self.payload);
        self.frames += 1;
        self.bytes += (FRAME_HEADER_LEN + self.payload.len()) as u64;
        Ok(Some(op))
    }
}
