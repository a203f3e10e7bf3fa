// attn_fwd_sm90: two optional probes, compiled out otherwise.
// TRACE 1, a launch timeline for latency-bound shapes (tools/trace_timeline.py): one leader thread per mark
// reads %globaltimer (ns) and writes it to row blockIdx.x of the module global `bsk_trace` (kTraceMarks
// uint64 per CTA; the host zeroes it and sets the pointer). Marks inside a work item keep that CTA's last
// item (a small grid has one per CTA), but for the kTraceFirst* marks, written for its first item alone.
// TRACE 2, a per-tile cycle trace of the consumer loop (tools/tile_timeline.py): thread 0 of each consumer
// warpgroup reads %clock64 (SM cycles, one clock for the CTA's warpgroups) at the TileEvents of each KV tile
// t < kTileTraceTiles and writes it to the module global `bsk_tile_trace`, laid out
// [CTA][consumer (3 slots)][tile][kTileEvents]; like the marks, a tile keeps the CTA's last item.
#pragma once
#include "config.cuh"

#ifndef TRACE
#define TRACE 0
#endif

#if TRACE == 1
extern "C" {
__device__ uint64_t* bsk_trace;  // unmangled, so the host finds it by name
}
#elif TRACE == 2
extern "C" {
__device__ int64_t* bsk_tile_trace;
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
    kTraceItemWait,    // consumer 0 starts waiting for its item's q_full (after the previous item's store)
    kTraceStoreEntry,  // consumer 0 enters the store (row sums reduced)
    kTraceStaged,      // bulk store: consumer 0's rows are in the staging buffer (the copy is issued next)
    // The CTA's first item alone (the marks above keep its last):
    kTraceFirstClaim,    // the claiming thread has decoded it (after the grid wait where it reads a block mask)
    kTraceFirstQ,        // the loader issues its Q
    kTraceFirstK,        // the loader has issued its first K tile
    kTraceFirstQLanded,  // consumer 0 past its q_full
    kTraceFirstItemS,    // consumer 0 has its first S
    kTraceMarks
};

// The time now (TRACE 1; else 0), to be written later as a mark with trace_mark_at.
BSK_DEVICE uint64_t trace_now() {
    uint64_t now = 0;
#if TRACE == 1
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
#endif
    return now;
}

BSK_DEVICE void trace_mark_at(int mark, uint64_t time) {
#if TRACE == 1
    bsk_trace[blockIdx.x * kTraceMarks + mark] = time;
#else
    (void)mark, (void)time;
#endif
}

BSK_DEVICE void trace_mark(int mark) { trace_mark_at(mark, trace_now()); }

// Per-tile events of the consumer loop (TRACE 2), in the order one iteration passes them.
enum TileEvent {
    kTileTop,         // the iteration starts (K_t and V_{t-1} not yet waited for)
    kTileLoaded,      // K_t and V_{t-1} have landed
    kTileTurn,        // the ping-pong turn is this warpgroup's
    kTileIssued,      // S_t and P_{t-1} V_{t-1} are issued and the turn passed on
    kTileScores,      // S_t has landed
    kTileSoftmax,     // the softmax of S_t is done
    kTilePV,          // P_{t-1} V_{t-1} has landed
    kTileEnd,         // P_t is packed
    kTileEvents
};
constexpr int kTileTraceTiles = 128;

BSK_DEVICE void tile_mark(int wg, int t, int event) {
#if TRACE == 2
    if (threadIdx.x % 128 == 0 && t < kTileTraceTiles) {
        int64_t now;
        asm volatile("mov.u64 %0, %%clock64;" : "=l"(now));
        bsk_tile_trace[((blockIdx.x * 3 + wg) * kTileTraceTiles + t) * kTileEvents + event] = now;
    }
#else
    (void)wg, (void)t, (void)event;
#endif
}

}  // namespace attn
