//! Static memory planning: every activation gets an offset in one arena.
//!
//! The schedule is the graph's node order. A tensor is live from the step that writes it to
//! the last step that reads it (both inclusive: a step reads its inputs while it writes its
//! output, so they may not share memory). One exception makes ResNets cheaper: a conv whose
//! epilogue adds an identity shortcut reads each residual element once, at the index it then
//! writes, so when the residual dies at that conv the output may take the residual's place
//! ("in-place residual epilogue"). Such a pair is one buffer living from the residual's
//! definition to the output's last use.
//!
//! The model's input stays in the caller's input buffer and is never written. Returned tensors
//! are written straight into the caller's output buffer, one after another in the order the
//! spec lists them, and later steps read them from there; they are never overwritten in place.
//!
//! The lower bound is the largest total size of buffers live at any one step. Offsets are
//! assigned greedily, largest buffer first, each at the lowest offset where it overlaps no
//! placed buffer live at the same time (the "greedy by size" planner of TFLite Micro). On the
//! chains of blocks a ResNet is made of this reaches the lower bound; the tests check that it
//! does for every spec in `specs/`.

use std::collections::BTreeMap;
use std::fmt;

use crate::ir::{Graph, NodeId, Op, Port, Shortcut};
use crate::shape::ShapeInfo;

/// Where a tensor lives. Offsets count `f32` elements; `Display` writes them as indices,
/// `arena[802816]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Loc {
    /// The caller's input buffer.
    Input,
    /// The caller's output buffer, at this offset.
    Output(usize),
    /// The arena, at this offset.
    Arena(usize),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Input => f.write_str("input"),
            Loc::Output(o) => write!(f, "output[{o}]"),
            Loc::Arena(o) => write!(f, "arena[{o}]"),
        }
    }
}

/// The bytes of one element: every activation is `f32`.
pub const ELEMENT_BYTES: usize = 4;

/// The result of planning: a place for every tensor, and the arena size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    locs: BTreeMap<NodeId, Loc>,
    /// Arena size in elements (a multiple of the alignment).
    pub arena_elements: usize,
    /// The largest live set of any step, in elements, sizes rounded up to the alignment.
    pub lower_bound_elements: usize,
    /// Alignment of every arena offset, in elements.
    pub align_elements: usize,
    /// Length of the output buffer, in elements.
    pub output_elements: usize,
    /// Convs whose output overwrites their identity shortcut.
    pub in_place: Vec<NodeId>,
}

impl MemoryPlan {
    /// Where the output of `id` lives.
    pub fn loc(&self, id: NodeId) -> Loc {
        self.locs[&id]
    }

    /// Arena size in bytes.
    pub fn arena_bytes(&self) -> usize {
        self.arena_elements * ELEMENT_BYTES
    }

    /// Lower bound in bytes.
    pub fn lower_bound_bytes(&self) -> usize {
        self.lower_bound_elements * ELEMENT_BYTES
    }
}

/// One arena buffer: tensors sharing memory, and when it is live.
#[derive(Debug, Clone, Copy)]
struct Buffer {
    size: usize,
    first: usize,
    last: usize,
}

impl Buffer {
    fn overlaps_in_time(&self, o: &Buffer) -> bool {
        self.first <= o.last && o.first <= self.last
    }
}

/// Plans the fused graph `g`. `align_bytes` (a power of two, at least 4) aligns every offset.
pub fn plan(g: &Graph, shapes: &ShapeInfo, align_bytes: usize) -> MemoryPlan {
    debug_assert!(align_bytes.is_power_of_two() && align_bytes >= ELEMENT_BYTES);
    let align = align_bytes / ELEMENT_BYTES;
    let schedule = g.schedule();
    let step: BTreeMap<NodeId, usize> = schedule.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let last_use = |id: NodeId| {
        g.users(id)
            .iter()
            .map(|&(u, _)| step[&u])
            .max()
            .unwrap_or(step[&id])
    };

    // Outputs first: they go to the caller's buffer.
    let mut locs = BTreeMap::new();
    let mut output_elements = 0;
    for o in g.outputs() {
        locs.entry(o.node).or_insert_with(|| {
            let at = output_elements;
            output_elements += shapes.get(o.node).elements();
            Loc::Output(at)
        });
    }
    locs.insert(g.input(), Loc::Input);

    // Arena tensors, grouped into buffers.
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut buffer_of: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut in_place = Vec::new();
    for &id in &schedule {
        if locs.contains_key(&id) {
            continue;
        }
        let size = shapes.get(id).elements().next_multiple_of(align);
        if let Some(b) = in_place_target(g, id, &buffer_of, &step, &last_use) {
            let buf = &mut buffers[b];
            debug_assert_eq!(buf.size, size);
            buf.last = last_use(id);
            buffer_of.insert(id, b);
            in_place.push(id);
            continue;
        }
        buffer_of.insert(id, buffers.len());
        buffers.push(Buffer {
            size,
            first: step[&id],
            last: last_use(id),
        });
    }

    let lower_bound = (0..schedule.len())
        .map(|s| {
            buffers
                .iter()
                .filter(|b| b.first <= s && s <= b.last)
                .map(|b| b.size)
                .sum()
        })
        .max()
        .unwrap_or(0);
    let offsets = greedy_by_size(&buffers);
    let arena = buffers
        .iter()
        .zip(&offsets)
        .map(|(b, o)| o + b.size)
        .max()
        .unwrap_or(0);
    for (id, b) in buffer_of {
        locs.insert(id, Loc::Arena(offsets[b]));
    }
    MemoryPlan {
        locs,
        arena_elements: arena,
        lower_bound_elements: lower_bound,
        align_elements: align,
        output_elements,
        in_place,
    }
}

/// The buffer a conv may write in place: its identity residual's, when that residual lives
/// in the arena, has the output's size, and is read for the last time by this conv.
fn in_place_target(
    g: &Graph,
    id: NodeId,
    buffer_of: &BTreeMap<NodeId, usize>,
    step: &BTreeMap<NodeId, usize>,
    last_use: &dyn Fn(NodeId) -> usize,
) -> Option<usize> {
    let Op::Conv(c) = &g.node(id).op else { return None };
    if !matches!(c.fused.shortcut, Some(Shortcut::Identity { .. })) {
        return None;
    }
    let res = g.input_at(id, Port::Residual)?;
    let b = *buffer_of.get(&res)?;
    let dies_here = last_use(res) == step[&id] && g.users(res).iter().filter(|&&(u, _)| u == id).count() == 1;
    let main_differs = g.input_at(id, Port::Main) != Some(res);
    (dies_here && main_differs).then_some(b)
}

/// Offsets for `buffers`: largest first, each at the lowest offset clear of every placed
/// buffer that is live at the same time.
fn greedy_by_size(buffers: &[Buffer]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].size), buffers[i].first, i));
    let mut offsets = vec![0; buffers.len()];
    let mut placed: Vec<usize> = Vec::new();
    for i in order {
        let b = &buffers[i];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].overlaps_in_time(b))
            .map(|&j| (offsets[j], offsets[j] + buffers[j].size))
            .collect();
        busy.sort();
        let mut at = 0;
        for (start, end) in busy {
            if start >= at + b.size {
                break;
            }
            at = at.max(end);
        }
        offsets[i] = at;
        placed.push(i);
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(spec: &str) -> (Graph, ShapeInfo, MemoryPlan) {
        let spec = crate::spec::parse_yaml(spec, "spec").unwrap();
        let crate::passes::Fused { graph, shapes, .. } =
            crate::passes::run(&Graph::from_spec(&spec)).unwrap();
        let p = plan(&graph, &shapes, 64);
        (graph, shapes, p)
    }

    /// No two tensors live at the same step overlap in memory, except an in-place pair.
    fn assert_no_conflicts(g: &Graph, shapes: &ShapeInfo, p: &MemoryPlan) {
        let schedule = g.schedule();
        let step: BTreeMap<_, _> = schedule.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let live = |id: NodeId| {
            let last = g
                .users(id)
                .iter()
                .map(|&(u, _)| step[&u])
                .max()
                .unwrap_or(step[&id]);
            (step[&id], last)
        };
        for &a in &schedule {
            for &b in &schedule {
                let (Loc::Arena(oa), Loc::Arena(ob)) = (p.loc(a), p.loc(b)) else {
                    continue;
                };
                if a >= b {
                    continue;
                }
                let ((fa, la), (fb, lb)) = (live(a), live(b));
                let time = fa <= lb && fb <= la;
                let space = oa < ob + shapes.get(b).elements() && ob < oa + shapes.get(a).elements();
                let in_place = p.in_place.contains(&b) && g.input_at(b, Port::Residual) == Some(a);
                assert!(
                    !(time && space) || in_place,
                    "{} and {} collide",
                    g.node(a).name,
                    g.node(b).name
                );
            }
        }
    }

    #[test]
    fn arena_equals_lower_bound_for_every_spec() {
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs")).unwrap() {
            let path = entry.unwrap().path();
            let (g, shapes, p) = planned(&std::fs::read_to_string(&path).unwrap());
            assert_eq!(p.arena_elements, p.lower_bound_elements, "{}", path.display());
            assert_no_conflicts(&g, &shapes, &p);
        }
    }

    #[test]
    fn resnet18_plan_uses_in_place_residuals() {
        let (g, _, p) = planned(include_str!("../../specs/resnet18.yaml"));
        // layer1.0, layer1.1, and the second block of each later stage have identity shortcuts.
        let names: Vec<_> = p.in_place.iter().map(|&n| g.node(n).name.as_str()).collect();
        assert_eq!(
            names,
            [
                "layer1.0.conv2",
                "layer1.1.conv2",
                "layer2.1.conv2",
                "layer3.1.conv2",
                "layer4.1.conv2"
            ]
        );
        // conv1's output (64x112x112) and the max pool's (64x56x56) are live together.
        assert_eq!(p.lower_bound_elements, 64 * 112 * 112 + 64 * 56 * 56);
        assert_eq!(p.output_elements, 1000);
    }

    #[test]
    fn features_are_written_to_the_output_buffer() {
        let (g, shapes, p) = planned(include_str!("../../specs/resnet50_dilated.yaml"));
        let outs = g.outputs();
        assert_eq!(p.loc(outs[0].node), Loc::Output(0));
        assert_eq!(
            p.loc(outs[1].node),
            Loc::Output(shapes.get(outs[0].node).elements())
        );
        assert_eq!(p.output_elements, (1024 + 2048) * 28 * 28);
        assert_no_conflicts(&g, &shapes, &p);
    }
}
