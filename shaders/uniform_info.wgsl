// The first `count` (at most 4) words of `info`, read by one invocation and handed to the whole
// workgroup as uniform values, so that loops bounded by them may wait at barriers. For the kernels
// that reduce a row per workgroup; `info` is bound by the file of each.

var<workgroup> shared_info: array<u32, 4>;

fn uniform_info(lid: u32, count: u32) -> array<u32, 4> {
    if lid == 0u {
        for (var i = 0u; i < count; i++) {
            shared_info[i] = info[i];
        }
    }
    return workgroupUniformLoad(&shared_info);
}

