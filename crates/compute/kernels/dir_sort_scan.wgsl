// dir_sort_scan: workgroup-wide inclusive prefix sums over the WG = 256 invocations,
// prepended to the dir_sort kernels that need them (see dir_sort.wgsl). Three steps with
// four barriers: 16 invocations each scan a row of 16 values, one scans the 16 row
// totals, and every invocation adds its row's offset (few barriers suit both GPUs and
// software rasterizers, where a barrier is a context switch). Every invocation of the
// workgroup must call them; the workgroup total can be read with scan_total() or
// scan2_total() until the next call.

var<workgroup> scan_sh: array<u32, 256>;
var<workgroup> scan_rows: array<u32, 16>;
var<workgroup> scan_sh2: array<vec2<u32>, 256>;
var<workgroup> scan_rows2: array<vec2<u32>, 16>;

fn scan_incl(li: u32, v: u32) -> u32 {
    workgroupBarrier(); // readers of the previous call are done
    scan_sh[li] = v;
    workgroupBarrier();
    if (li < 16u) {
        var run = 0u;
        for (var k = 0u; k < 16u; k = k + 1u) {
            run = run + scan_sh[li * 16u + k];
            scan_sh[li * 16u + k] = run;
        }
    }
    workgroupBarrier();
    if (li == 0u) {
        var run = 0u;
        for (var r = 0u; r < 16u; r = r + 1u) {
            scan_rows[r] = run;
            run = run + scan_sh[r * 16u + 15u];
        }
    }
    workgroupBarrier();
    return scan_sh[li] + scan_rows[li / 16u];
}

fn scan_total() -> u32 {
    return scan_sh[255] + scan_rows[15];
}

// The same on two independent lanes at once.
fn scan2_incl(li: u32, v: vec2<u32>) -> vec2<u32> {
    workgroupBarrier();
    scan_sh2[li] = v;
    workgroupBarrier();
    if (li < 16u) {
        var run = vec2<u32>(0u, 0u);
        for (var k = 0u; k < 16u; k = k + 1u) {
            run = run + scan_sh2[li * 16u + k];
            scan_sh2[li * 16u + k] = run;
        }
    }
    workgroupBarrier();
    if (li == 0u) {
        var run = vec2<u32>(0u, 0u);
        for (var r = 0u; r < 16u; r = r + 1u) {
            scan_rows2[r] = run;
            run = run + scan_sh2[r * 16u + 15u];
        }
    }
    workgroupBarrier();
    return scan_sh2[li] + scan_rows2[li / 16u];
}

fn scan2_total() -> vec2<u32> {
    return scan_sh2[255] + scan_rows2[15];
}
