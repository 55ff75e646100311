//! Any bytes as a safetensors file: an error, or tensors that tile the data section exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustformers_core::safetensors_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = safetensors_header::parse(data) {
        let mut end = header.data_start;
        for t in &header.tensors {
            assert_eq!(t.start, end, "tensor `{}` not contiguous", t.name);
            end = t.end;
        }
        assert_eq!(end, data.len());
    }
});
