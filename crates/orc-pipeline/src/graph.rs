//! Graph algorithms over a list of steps whose `deps` are indices into the same list.

use crate::plan::{Plan, Step};

/// A topological order of `steps` (dependencies first), stable with respect to document order.
/// Steps on a cycle are left out; `find_cycle` names them.
pub fn topo_order(steps: &[Step]) -> Vec<usize> {
    topo_order_by(steps.len(), |i| steps[i].deps.iter().map(|&d| d as usize))
}

/// Kahn's algorithm over `n` nodes whose dependencies `deps(i)` yields.
pub(crate) fn topo_order_by<I: Iterator<Item = usize>>(
    n: usize,
    deps: impl Fn(usize) -> I,
) -> Vec<usize> {
    let mut indegree = vec![0u32; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deg) in indegree.iter_mut().enumerate() {
        for d in deps(i) {
            if d < n {
                *deg += 1;
                dependents[d].push(i);
            }
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &j in &dependents[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push_back(j);
            }
        }
    }
    order
}

/// One dependency cycle, as step indices in order (`a -> b -> … -> a` without the repeat), if there is one.
pub(crate) fn find_cycle(n: usize, deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    for start in 0..n {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next dep index).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                match mark.get(d).copied() {
                    Some(Mark::New) => {
                        mark[d] = Mark::Open;
                        stack.push((d, 0));
                    }
                    Some(Mark::Open) => {
                        let from = stack.iter().position(|&(s, _)| s == d).unwrap_or(0);
                        return Some(stack[from..].iter().map(|&(s, _)| s).collect());
                    }
                    _ => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

/// Every step that `start` transitively depends on (not including itself).
pub fn ancestors(steps: &[Step], start: usize) -> Vec<bool> {
    let mut seen = vec![false; steps.len()];
    let mut stack: Vec<usize> = steps[start].deps.iter().map(|&d| d as usize).collect();
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut seen[i], true) {
            stack.extend(steps[i].deps.iter().map(|&d| d as usize));
        }
    }
    seen
}

/// Every step that transitively depends on `start` (not including itself).
pub fn descendants(steps: &[Step], start: usize) -> Vec<bool> {
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for &d in &s.deps {
            dependents[d as usize].push(i);
        }
    }
    let mut seen = vec![false; steps.len()];
    let mut stack = dependents[start].clone();
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut seen[i], true) {
            stack.extend(dependents[i].iter().copied());
        }
    }
    seen
}

/// The steps a jump from `from` to `to` passes over: those after `from` and before `to` on some path.
pub fn jumped_over(steps: &[Step], from: usize, to: usize) -> Vec<usize> {
    let after = descendants(steps, from);
    let before = ancestors(steps, to);
    (0..steps.len())
        .filter(|&i| i != from && i != to && after[i] && before[i])
        .collect()
}

impl Plan {
    /// Kahn levels of the top-level steps: every step of a level depends only on earlier levels.
    pub fn levels(&self) -> Vec<Vec<usize>> {
        let n = self.steps.len();
        let mut level = vec![0usize; n];
        // Steps are compiled in a topological order, so one pass suffices.
        for i in topo_order(&self.steps) {
            level[i] = self.steps[i]
                .deps
                .iter()
                .map(|&d| level[d as usize] + 1)
                .max()
                .unwrap_or(0);
        }
        let depth = level.iter().copied().max().map_or(0, |m| m + 1);
        let mut out = vec![Vec::new(); depth];
        for (i, l) in level.into_iter().enumerate() {
            out[l].push(i);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cycle() {
        let deps = vec![vec![2], vec![0], vec![1], vec![]];
        let cycle = find_cycle(4, &deps).unwrap_or_default();
        assert_eq!(cycle.len(), 3);
        assert!(find_cycle(2, &[vec![], vec![0]]).is_none());
    }

    #[test]
    fn topo_order_respects_deps() {
        let deps = [vec![1usize], vec![], vec![0, 1]];
        let order = topo_order_by(3, |i| deps[i].iter().copied());
        assert_eq!(order, vec![1, 0, 2]);
    }
}
