resnet_macros::resnet! {
    pub mod tiny {
        spec: "data/tiny.yaml",
        weights: "data/tiny_missing_tensor.safetensors",
    }
}

fn main() {}
