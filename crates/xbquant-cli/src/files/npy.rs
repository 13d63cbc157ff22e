//! The header of a `.npy` file (format versions 1 to 3), read with every field checked against
//! the file before anything is allocated for its data.

use anyhow::Result;

use super::dtypes::{Float, Order};
use super::source::Source;

/// The largest header read (numpy itself refuses headers over 10,000 bytes by default).
const MAX_HEADER: u64 = 1 << 20;

/// What a `.npy` header says, checked against the file's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Bytes before the data: the magic string, version, length and the header text.
    pub data_start: u64,
    pub dtype: Dtype,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
    pub elements: u64,
}

/// The element type of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dtype {
    /// A float type that is quantized: `<f2`, `>f4`, `=f8`, ...
    Float(Float, Order),
    /// Any other fixed-size type, copied: its `descr` and the size of an element.
    Other { descr: String, size: u64 },
}

impl Dtype {
    /// The `descr` text, e.g. `<f4`.
    pub fn name(&self) -> String {
        match self {
            Dtype::Float(f, order) => format!("{}f{}", order.npy_char(), f.size()),
            Dtype::Other { descr, .. } => descr.clone(),
        }
    }
}

/// Reads and checks the header of the `.npy` file `src`.
pub fn read_header(src: &mut Source) -> Result<Header> {
    let path = src.path().display().to_string();
    let len = src.len();
    let bad = |why: &str| anyhow::anyhow!("{path}: not a valid .npy file: {why}");
    if len < 10 {
        return Err(bad(&format!("{len} bytes, too short for a header")));
    }
    let mut start = [0u8; 12];
    let n = len.min(12) as usize;
    src.read_at(0, &mut start[..n])?;
    if &start[..6] != b"\x93NUMPY" {
        return Err(bad("no \\x93NUMPY magic string at the start"));
    }
    let (header_len, text_start) = match start[6] {
        1 => (u64::from(u16::from_le_bytes([start[8], start[9]])), 10),
        2 | 3 if n == 12 => (
            u64::from(u32::from_le_bytes([
                start[8], start[9], start[10], start[11],
            ])),
            12,
        ),
        2 | 3 => return Err(bad("the file ends inside the header")),
        v => return Err(bad(&format!("unknown format version {v}"))),
    };
    if header_len > MAX_HEADER {
        return Err(bad(&format!(
            "a header of {header_len} bytes (at most {MAX_HEADER} are read)"
        )));
    }
    let data_start = text_start + header_len;
    if data_start > len {
        return Err(bad(&format!(
            "the header claims {header_len} bytes, past the end of the {len}-byte file"
        )));
    }
    let mut text = vec![0u8; header_len as usize];
    src.read_at(text_start, &mut text)?;
    let text = std::str::from_utf8(&text).map_err(|_| bad("the header is not text"))?;
    let (descr, fortran_order, shape) = parse_dict(text).map_err(|e| bad(&e))?;
    let dtype = parse_descr(&descr).map_err(|e| bad(&e))?;
    let elements = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(&format!("the shape {shape:?} has more than 2^64 elements")))?;
    let size = match &dtype {
        Dtype::Float(f, _) => f.size() as u64,
        Dtype::Other { size, .. } => *size,
    };
    let bytes = elements.checked_mul(size).ok_or_else(|| {
        bad(&format!(
            "the shape {shape:?} of {} needs more than 2^64 bytes",
            dtype.name()
        ))
    })?;
    if bytes != len - data_start {
        return Err(bad(&format!(
            "the shape {shape:?} of {} needs {bytes} bytes of data, the file holds {}",
            dtype.name(),
            len - data_start
        )));
    }
    Ok(Header {
        data_start,
        dtype,
        fortran_order,
        shape,
        elements,
    })
}

/// The element type of a `descr`: floats of 2, 4 or 8 bytes are quantized; other simple types
/// are copied; structured and object arrays are refused.
fn parse_descr(descr: &str) -> Result<Dtype, String> {
    let mut chars = descr.chars();
    let order = chars.next().ok_or("an empty descr")?;
    let kind = chars.next().ok_or_else(|| format!("descr {descr:?}"))?;
    let rest: String = chars.collect();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let unit = &rest[digits.len()..];
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("unsupported descr {descr:?}"))?;
    let order = match order {
        '<' => Order::Little,
        '>' => Order::Big,
        '=' => Order::native(),
        '|' => Order::native(),
        _ => return Err(format!("descr {descr:?}: unknown byte order {order:?}")),
    };
    let float = match (kind, count) {
        ('f', 2) => Some(Float::F16),
        ('f', 4) => Some(Float::F32),
        ('f', 8) => Some(Float::F64),
        _ => None,
    };
    if let Some(f) = float {
        if !unit.is_empty() {
            return Err(format!("descr {descr:?}"));
        }
        return Ok(Dtype::Float(f, order));
    }
    let size = match kind {
        'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'V' | '?' if unit.is_empty() => count,
        'U' if unit.is_empty() => count.checked_mul(4).ok_or("descr overflows")?,
        'M' | 'm' if unit.is_empty() || (unit.starts_with('[') && unit.ends_with(']')) => count,
        _ => return Err(format!("unsupported descr {descr:?}")),
    };
    if size == 0 {
        return Err(format!("descr {descr:?}: zero-sized elements"));
    }
    Ok(Dtype::Other {
        descr: descr.to_string(),
        size,
    })
}

/// The three fields of a header's Python dict literal.
fn parse_dict(text: &str) -> Result<(String, bool, Vec<u64>), String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_space();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        let dup = match key.as_str() {
            "descr" => descr.replace(p.string()?).is_some(),
            "fortran_order" => fortran.replace(p.boolean()?).is_some(),
            "shape" => shape.replace(p.tuple()?).is_some(),
            other => return Err(format!("unknown header key {other:?}")),
        };
        if dup {
            return Err(format!("header key {key:?} given twice"));
        }
        p.skip_space();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_space();
    if p.i != p.s.len() {
        return Err("text after the header's dict".into());
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err("the header lacks descr, fortran_order or shape".into()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at byte {} of the header",
                c as char, self.i
            ))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "expected a string at byte {} of the header",
                    self.i
                ))
            }
        };
        let start = self.i + 1;
        let end = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("an unterminated string in the header")?;
        self.i = start + end + 1;
        String::from_utf8(self.s[start..start + end].to_vec())
            .map_err(|_| "a string in the header is not text".into())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err("fortran_order is neither True nor False".into())
    }

    fn tuple(&mut self) -> Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            self.skip_space();
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let dim = digits
                .parse::<u64>()
                .map_err(|_| format!("a shape entry at byte {start} is not a size"))?;
            dims.push(dim);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicts_parse() {
        let (d, f, s) =
            parse_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }    \n").unwrap();
        assert_eq!((d.as_str(), f, s), ("<f4", true, vec![3, 4]));
        let (_, _, s) =
            parse_dict("{'shape': (), 'descr': '>f8', 'fortran_order': False}").unwrap();
        assert!(s.is_empty());
        let (_, _, s) = parse_dict("{'descr':'<f2','fortran_order':False,'shape':(7,)}").unwrap();
        assert_eq!(s, [7]);
        for bad in [
            "",
            "{'descr': '<f4'}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': 1, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} tail",
            "{'descr: '<f4', 'fortran_order': False, 'shape': (1,)}",
        ] {
            assert!(parse_dict(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn descrs_parse() {
        assert_eq!(
            parse_descr("<f4").unwrap(),
            Dtype::Float(Float::F32, Order::Little)
        );
        assert_eq!(
            parse_descr(">f2").unwrap(),
            Dtype::Float(Float::F16, Order::Big)
        );
        assert!(matches!(
            parse_descr("<i8").unwrap(),
            Dtype::Other { size: 8, .. }
        ));
        assert!(matches!(
            parse_descr("<U3").unwrap(),
            Dtype::Other { size: 12, .. }
        ));
        assert!(matches!(
            parse_descr("<M8[ns]").unwrap(),
            Dtype::Other { size: 8, .. }
        ));
        for bad in [
            "",
            "<",
            "<f",
            "|O",
            "<f4x",
            "!f4",
            "<i0",
            "<U99999999999999999999",
        ] {
            assert!(parse_descr(bad).is_err(), "{bad:?}");
        }
    }
}
