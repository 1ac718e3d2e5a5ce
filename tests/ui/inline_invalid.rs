resnet_macros::resnet! {
    pub mod tiny {
        block: basic,
        layers: [1, 0],
        groups: 4,
        stem: cifar,
        input: [1, 3, 32, 32],
    }
}

fn main() {}
