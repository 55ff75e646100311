//! Any bytes as an image file: decoding (under a small pixel limit) fails with an error or
//! gives RGB pixels of the declared size, and the ViT and CLIP processors run on them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use trustformers_vision::{decode_image_limited, Backend, ImageProcessor};

fuzz_target!(|data: &[u8]| {
    let Ok(image) = decode_image_limited(data, "fuzz", 1 << 20) else {
        return;
    };
    assert!(image.width() > 0 && image.height() > 0);
    assert_eq!(
        image.as_raw().len(),
        image.width() as usize * image.height() as usize * 3
    );
    for (config, backend) in [
        (json!({"image_processor_type": "ViTImageProcessor", "size": {"height": 16, "width": 16}}), Backend::Pil),
        (json!({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 12}, "crop_size": 10}), Backend::Torchvision),
    ] {
        let processor = ImageProcessor::from_config(&config).unwrap().with_backend(backend);
        let values = processor.pixel_values(&image).unwrap();
        let (h, w) = processor.output_size(image.height(), image.width());
        assert_eq!(values.len(), 3 * h as usize * w as usize);
        assert!(values.iter().all(|v| v.is_finite()));
    }
});
