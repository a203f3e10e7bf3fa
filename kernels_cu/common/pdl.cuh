// Programmatic dependent launch (PTX griddepcontrol, sm_90). A kernel launched with the driver's
// programmatic-stream-serialization attribute may start while the previous kernel in its stream is still
// running; `grid_dependency_wait` blocks until that kernel has finished and its memory is visible, so it must
// come before the first global-memory access. Without the attribute both instructions do nothing.
#pragma once
#include "prelude.cuh"

BSK_DEVICE void grid_dependency_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// Lets the next kernel in the stream (if launched with the attribute) start its own prologue now.
BSK_DEVICE void grid_dependents_launch() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
