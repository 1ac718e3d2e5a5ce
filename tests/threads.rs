//! A forward pass gives the same bits for any thread count: each conv's jobs are split across
//! threads by output slices, and every element is computed the same way whichever thread
//! computes it. (The setting is process-wide; other tests running meanwhile are unaffected
//! for the same reason.)

use crate::numerics::loaded_output;

#[test]
fn one_two_and_three_threads_give_the_same_bits() {
    // Convs of at least 2^20 MACs are split; each of these models has several.
    for case in ["resnet20_cifar", "resnet8_cifar_b2", "resnet18_features"] {
        resnet_runtime::threads::set_threads(1);
        let one = loaded_output(case);
        for n in [2, 3] {
            resnet_runtime::threads::set_threads(n);
            let many = loaded_output(case);
            let same = one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same && one.len() == many.len(),
                "{case}: {n} threads differ from 1"
            );
        }
    }
    resnet_runtime::threads::set_threads(1);
}
