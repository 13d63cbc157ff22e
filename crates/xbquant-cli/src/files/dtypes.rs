//! The element types files hold: the floats xbquant quantizes, the integers that hold codes, and
//! byte orders, typed against the `safetensors` crate's [`Dtype`].

use safetensors::Dtype;

/// A float type that files hold and xbquant quantizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Float {
    F16,
    BF16,
    F32,
    F64,
}

impl Float {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Float::F16 | Float::BF16 => 2,
            Float::F32 => 4,
            Float::F64 => 8,
        }
    }

    /// The name in reports: `f32`, ...
    pub fn name(self) -> &'static str {
        match self {
            Float::F16 => "f16",
            Float::BF16 => "bf16",
            Float::F32 => "f32",
            Float::F64 => "f64",
        }
    }

    /// The safetensors dtype.
    pub fn dtype(self) -> Dtype {
        match self {
            Float::F16 => Dtype::F16,
            Float::BF16 => Dtype::BF16,
            Float::F32 => Dtype::F32,
            Float::F64 => Dtype::F64,
        }
    }
}

impl TryFrom<Dtype> for Float {
    type Error = Dtype;

    /// The float type of a safetensors dtype; the dtype back for any other.
    fn try_from(dtype: Dtype) -> Result<Float, Dtype> {
        Ok(match dtype {
            Dtype::F16 => Float::F16,
            Dtype::BF16 => Float::BF16,
            Dtype::F32 => Float::F32,
            Dtype::F64 => Float::F64,
            other => return Err(other),
        })
    }
}

/// The byte order of a file's elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Little,
    Big,
}

impl Order {
    /// This machine's byte order.
    pub fn native() -> Order {
        if cfg!(target_endian = "big") {
            Order::Big
        } else {
            Order::Little
        }
    }

    /// The `.npy` byte-order character.
    pub fn npy_char(self) -> char {
        match self {
            Order::Little => '<',
            Order::Big => '>',
        }
    }
}

/// An integer type that holds codes in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeType {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl CodeType {
    /// The smallest type that holds every word of `wl` bits, signed or not.
    pub fn smallest(wl: u32, signed: bool) -> CodeType {
        match (signed, wl) {
            (true, 0..=8) => CodeType::I8,
            (true, 9..=16) => CodeType::I16,
            (true, 17..=32) => CodeType::I32,
            (true, _) => CodeType::I64,
            (false, 0..=8) => CodeType::U8,
            (false, 9..=16) => CodeType::U16,
            (false, 17..=32) => CodeType::U32,
            (false, _) => CodeType::U64,
        }
    }

    /// Bytes per code.
    pub fn size(self) -> usize {
        match self {
            CodeType::I8 | CodeType::U8 => 1,
            CodeType::I16 | CodeType::U16 => 2,
            CodeType::I32 | CodeType::U32 => 4,
            CodeType::I64 | CodeType::U64 => 8,
        }
    }

    /// The safetensors dtype.
    pub fn dtype(self) -> Dtype {
        match self {
            CodeType::I8 => Dtype::I8,
            CodeType::I16 => Dtype::I16,
            CodeType::I32 => Dtype::I32,
            CodeType::I64 => Dtype::I64,
            CodeType::U8 => Dtype::U8,
            CodeType::U16 => Dtype::U16,
            CodeType::U32 => Dtype::U32,
            CodeType::U64 => Dtype::U64,
        }
    }
}

impl TryFrom<Dtype> for CodeType {
    type Error = Dtype;

    /// The code type of a safetensors dtype; the dtype back for any other.
    fn try_from(dtype: Dtype) -> Result<CodeType, Dtype> {
        Ok(match dtype {
            Dtype::I8 => CodeType::I8,
            Dtype::I16 => CodeType::I16,
            Dtype::I32 => CodeType::I32,
            Dtype::I64 => CodeType::I64,
            Dtype::U8 => CodeType::U8,
            Dtype::U16 => CodeType::U16,
            Dtype::U32 => CodeType::U32,
            Dtype::U64 => CodeType::U64,
            other => return Err(other),
        })
    }
}

/// A safetensors dtype's name, as its files spell it (`F32`, `BF16`, ...).
pub fn dtype_name(dtype: Dtype) -> String {
    match serde_json::to_value(dtype) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_round_trip() {
        for f in [Float::F16, Float::BF16, Float::F32, Float::F64] {
            assert_eq!(Float::try_from(f.dtype()), Ok(f));
            assert_eq!(f.size() * 8, f.dtype().bitsize());
        }
        for wl in [1, 8, 9, 16, 17, 32, 33, 64] {
            for signed in [true, false] {
                let c = CodeType::smallest(wl, signed);
                assert_eq!(CodeType::try_from(c.dtype()), Ok(c));
                assert_eq!(c.size() * 8, c.dtype().bitsize());
            }
        }
        assert_eq!(Float::try_from(Dtype::I8), Err(Dtype::I8));
        assert_eq!(CodeType::try_from(Dtype::F32), Err(Dtype::F32));
        assert_eq!(dtype_name(Dtype::BF16), "BF16");
        assert_eq!(dtype_name(Dtype::F8_E4M3), "F8_E4M3");
    }
}
