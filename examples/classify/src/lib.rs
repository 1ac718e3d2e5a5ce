//! ImageNet preprocessing as torchvision's `weights.transforms()` for resnet18/resnet50 does
//! it, and the two models, compiled from `specs/` with weights loaded at run time.

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};

resnet_macros::resnet! { pub mod resnet18 { spec: "../../specs/resnet18.yaml" } }
resnet_macros::resnet! { pub mod resnet50 { spec: "../../specs/resnet50.yaml" } }

/// ImageNet's per-channel mean and standard deviation (torchvision's `Normalize`).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// See [`MEAN`].
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The 1000 ImageNet class names, in torchvision's order.
pub fn class_names() -> Vec<&'static str> {
    include_str!("../imagenet_classes.txt").lines().collect()
}

/// `Resize(256)`, `CenterCrop(224)`, `ToTensor()`, `Normalize(MEAN, STD)`: a `[1, 3, 224, 224]`
/// NCHW tensor.
///
/// `Resize(256)` scales the shorter side to 256 and the longer one to `int(256 * long /
/// short)`, with an antialiased bilinear filter (PIL's, which torchvision uses for PIL
/// images; `image`'s `Triangle` filter is the same kernel). The crop's origin is
/// `round((size - 224) / 2)`.
pub fn preprocess(img: &DynamicImage) -> Vec<f32> {
    let rgb: RgbImage = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let (nw, nh) = if w <= h {
        (256, (256.0 * h as f64 / w as f64) as u32)
    } else {
        ((256.0 * w as f64 / h as f64) as u32, 256)
    };
    let resized = image::imageops::resize(&rgb, nw, nh, FilterType::Triangle);
    let left = ((nw - 224) as f64 / 2.0).round() as u32;
    let top = ((nh - 224) as f64 / 2.0).round() as u32;
    let mut out = vec![0.0f32; 3 * 224 * 224];
    for y in 0..224 {
        for x in 0..224 {
            let p = resized.get_pixel(left + x, top + y);
            for c in 0..3 {
                let v = f32::from(p[c]) / 255.0;
                out[(c * 224 + y as usize) * 224 + x as usize] = (v - MEAN[c]) / STD[c];
            }
        }
    }
    out
}

/// Softmax of `logits`, then the `k` most probable classes as (index, probability), most
/// probable first.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let mut ranked: Vec<(usize, f32)> = exp.iter().map(|&e| (e / sum) as f32).enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uniform_image_normalizes_to_constants_per_channel() {
        // Resizing and cropping a uniform image keeps its color, so every output value is
        // known exactly: (v / 255 - mean) / std.
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 500, image::Rgb([255, 128, 0])));
        let x = preprocess(&img);
        assert_eq!(x.len(), 3 * 224 * 224);
        for (c, v) in [255.0f32, 128.0, 0.0].into_iter().enumerate() {
            let expected = (v / 255.0 - MEAN[c]) / STD[c];
            let plane = &x[c * 224 * 224..(c + 1) * 224 * 224];
            assert!(plane.iter().all(|&p| (p - expected).abs() < 1e-6), "channel {c}");
        }
    }

    #[test]
    fn the_crop_is_centered() {
        // A 256x512 image whose left and right quarters are black and middle is white: the
        // centered 224-wide crop of the (already 256-high) image is all white.
        let img = RgbImage::from_fn(512, 256, |x, _| {
            if (128..384).contains(&x) {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 0])
            }
        });
        let x = preprocess(&DynamicImage::ImageRgb8(img));
        let white = (1.0 - MEAN[0]) / STD[0];
        assert!(x[..224 * 224].iter().all(|&p| (p - white).abs() < 1e-5));
    }

    #[test]
    fn top_k_is_a_softmax_ranking() {
        let top = top_k(&[0.0, 2.0, 1.0, 2.0], 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 3, 2]);
        let z = 1.0 + 2.0 * 2f64.exp() + 1f64.exp();
        assert!((f64::from(top[0].1) - 2f64.exp() / z).abs() < 1e-6);
        assert_eq!(class_names().len(), 1000);
        assert_eq!(class_names()[207], "golden retriever");
    }
}
