//! Keys and values to bytes and back, with postcard.

use std::ops::Range;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;

fn codec_error(table: &str, what: &str, e: postcard::Error) -> Error {
    Error::Codec {
        table: table.to_string(),
        reason: format!("cannot encode {what}: {e}"),
    }
}

pub(crate) fn encode<T: Serialize + ?Sized>(
    table: &str,
    what: &str,
    x: &T,
) -> Result<Bytes, Error> {
    postcard::to_allocvec(x)
        .map(Bytes::from)
        .map_err(|e| codec_error(table, what, e))
}

pub(crate) fn decode<T: DeserializeOwned>(table: &str, what: &str, b: &[u8]) -> Result<T, Error> {
    postcard::from_bytes(b).map_err(|e| Error::Codec {
        table: table.to_string(),
        reason: format!(
            "cannot decode {what} (another type was written under this table name?): {e}"
        ),
    })
}

/// Encodes the keys and values of a batch into one buffer and hands them out as slices of
/// it: one allocation for the batch instead of one or more per key and value.
pub(crate) struct Batch<'a> {
    table: &'a str,
    buf: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl<'a> Batch<'a> {
    /// A batch expected to hold about `items` encodings.
    pub fn new(table: &'a str, items: usize) -> Self {
        Batch {
            table,
            buf: Vec::with_capacity(items * 16),
            spans: Vec::with_capacity(items),
        }
    }

    /// Appends the encoding of `x`.
    pub fn push<T: Serialize + ?Sized>(&mut self, what: &str, x: &T) -> Result<(), Error> {
        let start = self.buf.len();
        self.buf = postcard::to_extend(x, std::mem::take(&mut self.buf))
            .map_err(|e| codec_error(self.table, what, e))?;
        self.spans.push(start..self.buf.len());
        Ok(())
    }

    /// The encodings, in the order they were pushed.
    pub fn finish(self) -> impl Iterator<Item = Bytes> {
        let all = Bytes::from(self.buf);
        self.spans.into_iter().map(move |r| all.slice(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_hands_out_each_encoding_as_encoded_alone() {
        let items: Vec<(String, u64)> = vec![
            ("".into(), 0),
            ("key".into(), 300),
            ("k".repeat(40), u64::MAX),
        ];
        let mut batch = Batch::new("t", 2);
        for (k, v) in &items {
            batch.push("key", k).unwrap();
            batch.push("value", v).unwrap();
        }
        let out: Vec<Bytes> = batch.finish().collect();
        assert_eq!(out.len(), 6);
        for (i, (k, v)) in items.iter().enumerate() {
            assert_eq!(out[2 * i], encode("t", "key", k).unwrap());
            assert_eq!(out[2 * i + 1], encode("t", "value", v).unwrap());
        }
    }
}
