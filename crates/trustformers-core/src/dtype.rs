//! Compute dtype policy.

use crate::{Error, Result};
use candle_core::DType;

/// Parses a user-facing dtype name (`f32`, `f16`, `bf16`, also `float32`, `float16`, `bfloat16`).
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name.to_ascii_lowercase().as_str() {
        "f32" | "float32" | "float" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(Error::InvalidInput(format!(
            "unknown dtype `{other}` (expected f32, f16 or bf16)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert_eq!(parse_dtype("Float16").unwrap(), DType::F16);
        assert!(matches!(parse_dtype("q4"), Err(Error::InvalidInput(_))));
    }
}
