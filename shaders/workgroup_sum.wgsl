// The sum over a workgroup of BLOCK invocations (a power of two), added pairwise in workgroup
// memory: what each row-wise kernel that reduces a row (or a share of a tensor) starts with.

const BLOCK: u32 = {{ block }}u;

var<workgroup> sums: array<f32, {{ block }}>;

// Every invocation's `s` added up; every invocation gets the total. Call it from uniform control
// flow (it waits at barriers).
fn workgroup_sum(s: f32, lid: u32) -> f32 {
    sums[lid] = s;
    workgroupBarrier();
    for (var stride = BLOCK / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            sums[lid] += sums[lid + stride];
        }
        workgroupBarrier();
    }
    let total = sums[0];
    // Nobody writes `sums` again before everyone has read the total.
    workgroupBarrier();
    return total;
}
