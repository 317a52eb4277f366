/*
 * cxx.c - the C++ allocation operators, written in C under their mangled
 * names, so that C++ programs allocate from buddyslab however they get it:
 * preloaded, linked with libbuddyslab.so, or linked with libbuddyslab.a (a
 * program whose objects name only `operator new` pulls this object, and
 * through it malloc.c, out of the archive). C programs need no libstdc++.
 *
 * The 20 replaceable forms (Itanium C++ ABI on x86-64: size_t is `m`,
 * std::align_val_t `St11align_val_t`, const std::nothrow_t & `RKSt9nothrow_t`):
 *   new      _Znwm   _ZnwmRKSt9nothrow_t   _ZnwmSt11align_val_t   _ZnwmSt11align_val_tRKSt9nothrow_t
 *   new[]    _Znam   _ZnamRKSt9nothrow_t   _ZnamSt11align_val_t   _ZnamSt11align_val_tRKSt9nothrow_t
 *   delete   _ZdlPv  _ZdlPvm  _ZdlPvRKSt9nothrow_t  _ZdlPvSt11align_val_t  _ZdlPvmSt11align_val_t
 *            _ZdlPvSt11align_val_tRKSt9nothrow_t
 *   delete[] the same six with _Zda
 * src/exports.map exports each name.
 *
 * Rules
 *  - new calls malloc (aligned forms above 16: aligned_alloc). On NULL it
 *    calls the handler std::get_new_handler() returns and tries again, until
 *    the allocation succeeds or there is no handler; then it throws
 *    std::bad_alloc (libstdc++'s std::__throw_bad_alloc). An exception thrown
 *    by a handler passes through (this file is built with -fexceptions).
 *  - The nothrow forms return NULL on failure and do not call the handler:
 *    a handler may throw, C cannot catch, and an exception leaving a noexcept
 *    function terminates the program. (libstdc++'s own nothrow new calls the
 *    handler inside a try block.)
 *  - Every delete is free(p): free finds a block's tier and alignment from
 *    its address. With BUDDYSLAB_CONF=secure's `sized` feature on (secure.h),
 *    new records its form (new, new[]) and delete checks its size, alignment
 *    and form first (harden.c); otherwise the size is not used.
 *  - new and delete call the exported malloc/aligned_alloc/free, not internal
 *    entry points, so a program that interposes its own malloc gets new and
 *    delete on that same allocator, never a mix.
 *
 * Reaching libstdc++ (BSL_CXX_ARCHIVE, a 0/1 switch set by the Makefile)
 *  0  libbuddyslab.so (cxx.o): weak references to std::get_new_handler and
 *     std::__throw_bad_alloc, so a C program preloads the library without
 *     libstdc++. When they are unresolved (no libstdc++ at start-up; a C++
 *     library dlopen'd later may have brought it in with RTLD_LOCAL), the
 *     failure path looks libstdc++.so.6 up with dlopen(RTLD_NOLOAD). With no
 *     libstdc++ in the process a failing new aborts:
 *     "buddyslab: operator new: out of memory, and no libstdc++ in the process to throw std::bad_alloc".
 *  1  libbuddyslab.a (cxx-archive.o): strong references, so that a static
 *     link (g++ -static) pulls libstdc++'s handler and throw helper in. Only
 *     C++ programs, which name these operators, pull this object in.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <dlfcn.h>
#include "common.h"
#include "config.h"
#include "secure.h"
#include "harden.h"      /* the secure `sized` checks (called only when the feature is on) */

#ifndef BSL_CXX_ARCHIVE
#define BSL_CXX_ARCHIVE 0
#endif

typedef void (*new_handler_fn)(void);

/* libstdc++: std::get_new_handler() (GLIBCXX_3.4.20) and std::__throw_bad_alloc().
 * Default visibility spelled out: common.h makes every declaration hidden, and
 * a hidden undefined reference could only bind inside this library. */
#if BSL_CXX_ARCHIVE
#define LIBSTDCXX_REF __attribute__((visibility("default")))
#else
#define LIBSTDCXX_REF __attribute__((visibility("default"), weak))
#endif
extern new_handler_fn _ZSt15get_new_handlerv(void) LIBSTDCXX_REF;
extern void _ZSt17__throw_bad_allocv(void) LIBSTDCXX_REF __attribute__((noreturn));

struct libstdcxx {
	new_handler_fn (*get_new_handler)(void);
	void (*throw_bad_alloc)(void);
};

static void find_libstdcxx(struct libstdcxx *rt)
{
	rt->get_new_handler = _ZSt15get_new_handlerv;
	rt->throw_bad_alloc = _ZSt17__throw_bad_allocv;
#if !BSL_CXX_ARCHIVE
	if (rt->get_new_handler && rt->throw_bad_alloc)
		return;
	/* Loaded after start-up, maybe out of the global scope: the handle of
	 * the copy already there, if any (never loads it; the handle is kept). */
	void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
	if (h) {
		rt->get_new_handler = (new_handler_fn (*)(void))dlsym(h, "_ZSt15get_new_handlerv");
		rt->throw_bad_alloc = (void (*)(void))dlsym(h, "_ZSt17__throw_bad_allocv");
	}
#endif
}

/* align 0: plain new. Otherwise a power of two (align_val_t); one that is not
 * fails like an allocation (aligned_alloc says EINVAL). */
static inline void *cxx_alloc(size_t n, size_t align)
{
	if (align <= MIN_ALIGN)
		return malloc(n);
	return aligned_alloc(align, n);
}

/* The throwing forms after the first failure: the new-handler loop. */
static COLD void *new_failed(size_t n, size_t align)
{
	for (;;) {
		struct libstdcxx rt;
		find_libstdcxx(&rt);
		new_handler_fn handler = rt.get_new_handler ? rt.get_new_handler() : NULL;
		if (!handler) {
			if (rt.throw_bad_alloc)
				rt.throw_bad_alloc();
			bsl_fatal("operator new: out of memory, and no libstdc++ in the process"
				  " to throw std::bad_alloc", NULL);
		}
		handler();
		void *p = cxx_alloc(n, align);
		if (p)
			return p;
	}
}

static inline void *cxx_new(size_t n, size_t align, unsigned kind)
{
	void *p = cxx_alloc(n, align);
	if (unlikely(!p))
		p = new_failed(n, align);
	if (unlikely(opt.secure & SEC_SIZED))
		bsl_secure_new(p, kind);
	return p;
}

static inline void *cxx_new_nothrow(size_t n, size_t align, unsigned kind)
{
	void *p = cxx_alloc(n, align);
	if (unlikely(opt.secure & SEC_SIZED))
		bsl_secure_new(p, kind);
	return p;
}

/* n UNSIZED: a delete without a size; align 0: without an alignment */
static inline void cxx_delete(void *p, size_t n, size_t align, unsigned kind)
{
	if (unlikely(opt.secure & SEC_SIZED))
		bsl_secure_delete(p, n, align, kind);
	free(p);
}

#define NEW SEC_KIND_NEW
#define ARR SEC_KIND_NEW_ARRAY

/* ------------------------------------------------------------------ new */

/* operator new(size_t), operator new[](size_t) */
EXPORT void *_Znwm(size_t n) { return cxx_new(n, 0, NEW); }
EXPORT void *_Znam(size_t n) { return cxx_new(n, 0, ARR); }
/* operator new(size_t, const std::nothrow_t &), and new[] */
EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt) { return cxx_new_nothrow(n, 0, NEW); }
EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *nt) { return cxx_new_nothrow(n, 0, ARR); }
/* operator new(size_t, std::align_val_t), and new[] */
EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t align) { return cxx_new(n, align, NEW); }
EXPORT void *_ZnamSt11align_val_t(size_t n, size_t align) { return cxx_new(n, align, ARR); }
/* operator new(size_t, std::align_val_t, const std::nothrow_t &), and new[] */
EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t align, const void *nt)
{
	return cxx_new_nothrow(n, align, NEW);
}
EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t align, const void *nt)
{
	return cxx_new_nothrow(n, align, ARR);
}

/* --------------------------------------------------------------- delete */

/* operator delete(void *), delete[] */
EXPORT void _ZdlPv(void *p) { cxx_delete(p, UNSIZED, 0, NEW); }
EXPORT void _ZdaPv(void *p) { cxx_delete(p, UNSIZED, 0, ARR); }
/* operator delete(void *, size_t), delete[] */
EXPORT void _ZdlPvm(void *p, size_t n) { cxx_delete(p, n, 0, NEW); }
EXPORT void _ZdaPvm(void *p, size_t n) { cxx_delete(p, n, 0, ARR); }
/* operator delete(void *, const std::nothrow_t &), delete[] */
EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) { cxx_delete(p, UNSIZED, 0, NEW); }
EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) { cxx_delete(p, UNSIZED, 0, ARR); }
/* operator delete(void *, std::align_val_t), delete[] */
EXPORT void _ZdlPvSt11align_val_t(void *p, size_t align) { cxx_delete(p, UNSIZED, align, NEW); }
EXPORT void _ZdaPvSt11align_val_t(void *p, size_t align) { cxx_delete(p, UNSIZED, align, ARR); }
/* operator delete(void *, size_t, std::align_val_t), delete[] */
EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t align) { cxx_delete(p, n, align, NEW); }
EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t align) { cxx_delete(p, n, align, ARR); }
/* operator delete(void *, std::align_val_t, const std::nothrow_t &), delete[] */
EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt)
{
	cxx_delete(p, UNSIZED, align, NEW);
}
EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt)
{
	cxx_delete(p, UNSIZED, align, ARR);
}
