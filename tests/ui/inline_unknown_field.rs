resnet_macros::resnet! {
    pub mod tiny {
        block: basic,
        layers: [1, 1],
        width_per_grop: 64,
        stem: "cifar",
    }
}

fn main() {}
