// attn_fwd_sm90: an optional timeline probe for latency-bound shapes (TRACE 1; tools/trace_timeline.py),
// compiled out otherwise. One leader thread per mark reads %globaltimer (ns) and writes it to row
// blockIdx.x of the module global `bsk_trace` (kTraceMarks uint64 per CTA; the host zeroes it and sets the
// pointer). Marks inside a work item keep that CTA's last item (a small grid has one per CTA).
#pragma once
#include "config.cuh"

#ifndef TRACE
#define TRACE 0
#endif

#if TRACE
extern "C" {
__device__ uint64_t* bsk_trace;  // unmangled, so the host finds it by name
}
#endif

namespace attn {

enum TraceMark {
    kTraceEntry,       // thread 0 enters the kernel
    kTraceGridWait,    // thread 0 past griddepcontrol.wait (the previous kernel's memory is visible)
    kTraceLoadStart,   // the loader has its first item (claimed, decoded) and issues Q
    kTraceQLanded,     // consumer 0 past its item's q_full
    kTraceFirstS,      // consumer 0 has S of its first KV tile
    kTraceLastPV,      // consumer 0's last P V landed
    kTraceLastPV1,     // consumer 1's last P V landed
    kTraceMerged,      // WG_SPLIT: the storing warpgroup has merged the other's partial result
    kTraceStored,      // the storing warpgroup issued its output (after any WG_SPLIT merge)
    kTraceExit,        // consumer 0 leaves the kernel
    kTraceMarks
};

BSK_DEVICE void trace_mark(int mark) {
#if TRACE
    uint64_t now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    bsk_trace[blockIdx.x * kTraceMarks + mark] = now;
#else
    (void)mark;
#endif
}

}  // namespace attn
