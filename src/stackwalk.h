/*
 * stackwalk.h - the heap profiler's stack walker (stackwalk.c): the calling
 * thread's return addresses, read with the unwind tables (.eh_frame) of the
 * loaded objects, each frame's rule decoded once and then kept by address.
 *
 * It gives the stack libgcc's _Unwind_Backtrace gives, or says it could not
 * (a frame whose rules it does not read: a signal frame, a CFA computed by
 * an expression or from a register other than rsp and rbp, code the
 * dynamic linker does not know); the caller then asks libgcc.
 */
#ifndef BSL_STACKWALK_H
#define BSL_STACKWALK_H
#include "common.h"
#pragma GCC visibility push(hidden)

/* Write into pcs (at most max) the return addresses of the frames whose
 * stack pointer is at or above skip_sp, innermost first, as libgcc's
 * _Unwind_GetIP reports them. Returns their number; *complete is false when
 * the walk stopped at a frame it does not read (then the count says nothing).
 * Never allocates and takes no lock: callers serialise their calls (prof.c
 * holds prof_lock), because the rule cache is not locked. */
unsigned stackwalk(uintptr_t skip_sp, uintptr_t *pcs, unsigned max, bool *complete);

/* Call before stackwalk with no allocator lock held (it takes the dynamic
 * linker's lock): notes whether a shared object was unloaded since the last
 * call (dl_iterate_phdr's dlpi_subs), and if one was, the next walk empties
 * the rule cache, whose rules may describe code that is no longer there. */
void stackwalk_sync(void);

/* Walks answered, frame rules decoded or found cached, and cache flushes
 * after an unload, since start (for tests). */
struct stackwalk_stats { uint64_t walks, complete, decoded, cached, flushes; };
extern struct stackwalk_stats stackwalk_stats;
#pragma GCC visibility pop
#endif
