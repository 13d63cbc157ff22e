//! The header of a `.safetensors` file, read with the `safetensors` crate's own validation
//! (offsets contiguous from zero, sizes that match shapes, no overflow) plus the checks it
//! leaves out: the header's length against the file before it is read, duplicate names, and
//! the data's length against the file.

use std::collections::HashMap;
use std::fmt;

use anyhow::Result;
use safetensors::tensor::{Metadata, TensorInfo};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::source::Source;

/// The largest header read (the `safetensors` crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// A `.safetensors` header, checked against its file.
pub struct Header {
    /// Where the data begins: 8 + the header's length.
    pub data_start: u64,
    pub metadata: Metadata,
}

impl Header {
    /// The tensors in the order of their data, with their information.
    pub fn tensors(&self) -> Vec<(String, &TensorInfo)> {
        self.metadata
            .offset_keys()
            .into_iter()
            .filter_map(|name| {
                let info = self.metadata.info(&name)?;
                Some((name, info))
            })
            .collect()
    }

    /// The free-form `__metadata__` map.
    pub fn extra(&self) -> Option<&HashMap<String, String>> {
        self.metadata.metadata().as_ref()
    }
}

/// Reads and checks the header of the `.safetensors` file `src`.
pub fn read_header(src: &mut Source) -> Result<Header> {
    let path = src.path().display().to_string();
    let len = src.len();
    let bad = |why: String| anyhow::anyhow!("{path}: not a valid .safetensors file: {why}");
    if len < 8 {
        return Err(bad(format!(
            "{len} bytes, too short for the header's length"
        )));
    }
    let mut n = [0u8; 8];
    src.read_at(0, &mut n)?;
    let n = u64::from_le_bytes(n);
    if n > len - 8 {
        return Err(bad(format!(
            "the header claims {n} bytes, past the end of the {len}-byte file"
        )));
    }
    if n > MAX_HEADER {
        return Err(bad(format!("a header of {n} bytes (at most {MAX_HEADER})")));
    }
    let mut text = vec![0u8; n as usize];
    src.read_next(&mut text)?;
    let text = std::str::from_utf8(&text).map_err(|_| bad("the header is not UTF-8".into()))?;
    let mut de = serde_json::Deserializer::from_str(text);
    if let Some(name) = de
        .deserialize_map(DuplicateKey)
        .map_err(|e| bad(format!("the header is not a JSON object: {e}")))?
    {
        return Err(bad(format!("the header names {name:?} twice")));
    }
    let metadata: Metadata =
        serde_json::from_str(text).map_err(|e| bad(format!("bad header: {e}")))?;
    let data_start = 8 + n;
    let data = metadata.data_len() as u64;
    if data != len - data_start {
        return Err(bad(format!(
            "the tensors take {data} bytes, the file holds {} after the header",
            len - data_start
        )));
    }
    Ok(Header {
        data_start,
        metadata,
    })
}

/// The header of a new file: `tensors` in this order, each with its dtype name and shape, the
/// data packed in that order; `extra` as `__metadata__`. Padded with spaces to a multiple of 8
/// bytes, as the `safetensors` crate writes it.
pub fn write_header(
    tensors: &[(String, safetensors::Dtype, Vec<usize>, usize)],
    extra: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut map = serde_json::Map::new();
    if let Some(extra) = extra {
        map.insert("__metadata__".into(), serde_json::to_value(extra)?);
    }
    let mut offset = 0usize;
    for (name, dtype, shape, bytes) in tensors {
        map.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype,
                "shape": shape,
                "data_offsets": [offset, offset + bytes],
            }),
        );
        offset += bytes;
    }
    let mut text = serde_json::to_vec(&map)?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    Ok(out)
}

/// Finds the first key that a JSON object names twice (`None` when each is named once).
struct DuplicateKey;

impl<'de> Visitor<'de> for DuplicateKey {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = std::collections::HashSet::new();
        let mut first = None;
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            if first.is_none() && !seen.insert(key.clone()) {
                first = Some(key);
            }
        }
        Ok(first)
    }
}
