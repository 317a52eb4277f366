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

/* Walks answered; objects looked up (_dl_find_object, once per object a
 * walk enters); frame rules decoded, found cached, and decoded again because
 * other code is at a cached address now (after a dlclose). For tests. */
struct stackwalk_stats { uint64_t walks, complete, objects, decoded, cached, replaced; };
extern struct stackwalk_stats stackwalk_stats;
/* Test hook: every cached rule now looks decoded from another object, as
 * after a dlclose and a dlopen that put other code at the same addresses. */
void stackwalk_test_forge(void);
#pragma GCC visibility pop
#endif
