resnet_macros::resnet! {
    pub mod tiny {
        spec: "data/tiny.yaml",
        weights: "data/no_such_weights.safetensors",
    }
}

fn main() {}
