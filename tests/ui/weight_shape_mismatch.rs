resnet_macros::resnet! {
    pub mod tiny {
        spec: "data/tiny.yaml",
        weights: "data/tiny_bad_shape.safetensors",
    }
}

fn main() {}
