resnet_macros::resnet! {
    pub mod tiny {
        spec: "data/tiny.yaml",
        weights: "$RESNETC_NO_SUCH_VARIABLE/tiny.safetensors",
    }
}

fn main() {}
