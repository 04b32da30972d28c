//! The protobuf wire format, as far as the codec reads and writes it itself: keys, varints,
//! fixed-width values and length-delimited spans. (prost's `encoding` works on typed fields;
//! here the types are known only at run time.)

/// One field value as it is on the wire.
#[derive(Debug, Clone, Copy)]
pub(super) enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const FIXED32: u8 = 5;

impl Raw<'_> {
    pub(super) fn wire_type(&self) -> u8 {
        match self {
            Raw::Varint(_) => VARINT,
            Raw::Fixed64(_) => FIXED64,
            Raw::Fixed32(_) => FIXED32,
            Raw::Bytes(_) => LEN,
        }
    }
}

/// Why bytes are not a protobuf message.
#[derive(Debug, thiserror::Error)]
pub(super) enum WireError {
    #[error("the message is cut short")]
    Truncated,
    #[error("a varint is longer than 10 bytes")]
    Varint,
    #[error("field number 0")]
    ZeroTag,
    #[error("wire type {0} (groups, or not protobuf)")]
    WireType(u64),
}

/// Reads `(field number, value)` pairs.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(super) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.buf.len() < 10 { WireError::Truncated } else { WireError::Varint })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let (head, rest) = self.buf.split_at_checked(n).ok_or(WireError::Truncated)?;
        self.buf = rest;
        Ok(head)
    }

    /// The next value of a packed run of `wire_type` values.
    pub(super) fn value(&mut self, wire_type: u8) -> Result<Raw<'a>, WireError> {
        Ok(match wire_type {
            VARINT => Raw::Varint(self.varint()?),
            FIXED64 => Raw::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| WireError::Truncated)?)),
            FIXED32 => Raw::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| WireError::Truncated)?)),
            LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                Raw::Bytes(self.take(len)?)
            }
            other => return Err(WireError::WireType(u64::from(other))),
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next field, or `None` at the end.
    pub(super) fn field(&mut self) -> Option<Result<(u32, Raw<'a>), WireError>> {
        if self.buf.is_empty() {
            return None;
        }
        Some((|| {
            let key = self.varint()?;
            let wire_type = key & 7;
            let number = u32::try_from(key >> 3).map_err(|_| WireError::ZeroTag)?;
            if number == 0 {
                return Err(WireError::ZeroTag);
            }
            let wire_type = u8::try_from(wire_type).map_err(|_| WireError::WireType(wire_type))?;
            Ok((number, self.value(wire_type)?))
        })())
    }
}

pub(super) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(super) fn put_key(buf: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(buf, (u64::from(number) << 3) | u64::from(wire_type));
}

pub(super) fn put_len(buf: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(buf, number, LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

pub(super) fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

pub(super) fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
