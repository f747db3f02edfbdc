//! Length-bounded strings and vectors for decoding untrusted bytes.
//!
//! Borsh prefixes every string and vector with a `u32` length.
//! These wrappers refuse a declared length above their bound before reading or allocating
//! anything, so a hostile length prefix cannot make a decoder allocate more than the bound.

use std::{fmt, io, ops::Deref};

use borsh::{BorshDeserialize, BorshSerialize};

/// Why a value does not fit its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The value has more bytes or items than its bound allows.
    #[error("length {len} exceeds the bound {max}")]
    TooLong {
        /// The value's length.
        len: usize,
        /// The bound.
        max: usize,
    },
}

/// A UTF-8 string of at most `MAX` bytes.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedString<const MAX: usize>(String);

/// A vector of at most `MAX` items.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<const MAX: usize> BoundedString<MAX> {
    /// Wraps `text`, failing when it is longer than `MAX` bytes.
    pub fn new(text: impl Into<String>) -> Result<Self, Error> {
        let text = text.into();
        if text.len() > MAX {
            return Err(Error::TooLong {
                len: text.len(),
                max: MAX,
            });
        }
        Ok(BoundedString(text))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owned string.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<const MAX: usize> Deref for BoundedString<MAX> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<&str> for BoundedString<MAX> {
    type Error = Error;

    fn try_from(text: &str) -> Result<Self, Error> {
        Self::new(text)
    }
}

impl<const MAX: usize> TryFrom<String> for BoundedString<MAX> {
    type Error = Error;

    fn try_from(text: String) -> Result<Self, Error> {
        Self::new(text)
    }
}

impl<const MAX: usize> fmt::Display for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> fmt::Debug for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<const MAX: usize> BorshSerialize for BoundedString<MAX> {
    fn serialize<W: io::Write>(&self, writer: &mut W) -> io::Result<()> {
        self.0.serialize(writer)
    }
}

impl<const MAX: usize> BorshDeserialize for BoundedString<MAX> {
    fn deserialize_reader<R: io::Read>(reader: &mut R) -> io::Result<Self> {
        let len = read_len(reader, MAX)?;
        let mut bytes = vec![0u8; len];
        reader.read_exact(&mut bytes)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "string is not utf-8"))?;
        Ok(BoundedString(text))
    }
}

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// Wraps `items`, failing when there are more than `MAX`.
    pub fn new(items: Vec<T>) -> Result<Self, Error> {
        if items.len() > MAX {
            return Err(Error::TooLong {
                len: items.len(),
                max: MAX,
            });
        }
        Ok(BoundedVec(items))
    }

    /// An empty vector.
    pub fn empty() -> Self {
        BoundedVec(Vec::new())
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// The owned items.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T, const MAX: usize> Deref for BoundedVec<T, MAX> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const MAX: usize> TryFrom<Vec<T>> for BoundedVec<T, MAX> {
    type Error = Error;

    fn try_from(items: Vec<T>) -> Result<Self, Error> {
        Self::new(items)
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<T: BorshSerialize, const MAX: usize> BorshSerialize for BoundedVec<T, MAX> {
    fn serialize<W: io::Write>(&self, writer: &mut W) -> io::Result<()> {
        self.0.serialize(writer)
    }
}

impl<T: BorshDeserialize, const MAX: usize> BorshDeserialize for BoundedVec<T, MAX> {
    fn deserialize_reader<R: io::Read>(reader: &mut R) -> io::Result<Self> {
        let len = read_len(reader, MAX)?;
        // The bound caps the allocation; items are still read one at a time so a short input
        // fails before the vector grows to its declared size.
        let mut items = Vec::with_capacity(len.min(64));
        for _ in 0..len {
            items.push(T::deserialize_reader(reader)?);
        }
        Ok(BoundedVec(items))
    }
}

/// Reads a borsh `u32` length and refuses one above `max`.
fn read_len<R: io::Read>(reader: &mut R, max: usize) -> io::Result<usize> {
    let len = u32::deserialize_reader(reader)?;
    let len = usize::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "length does not fit usize"))?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("declared length {len} exceeds the bound {max}"),
        ));
    }
    Ok(len)
}
