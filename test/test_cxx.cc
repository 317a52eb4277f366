/*
 * test_cxx.cc - C++ allocation through buddyslab's operators (src/cxx.c).
 *
 * Linked with libbuddyslab.a, so the operators are the archive's cxx-archive.o
 * (test/cxx_link.sh builds this file against libbuddyslab.so too, and also
 * checks with nm that the operators come from buddyslab).
 * operator new/delete in every form (the 20 replaceable ones, each called by
 * name; plain, array, sized, aligned with alignas(256) types and
 * std::align_val_t, nothrow), the failure paths (nothrow new of a huge size
 * returns nullptr without calling the new-handler, plain and aligned new
 * throw std::bad_alloc, also for sizes libstdc++'s aligned new would wrap to
 * 0; the new-handler is called until it succeeds or removes itself; an
 * exception thrown by a handler passes through; a handler that makes memory
 * available gets the allocation retried), and std::vector/string/map churn,
 * thread_local destructors that allocate. bsl_owns(ptr) == 1 on what new
 * returns proves the memory is buddyslab's.
 */
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>
#include <list>
#include <memory>
#include <thread>
#include <sys/resource.h>
#include <unistd.h>
#include "buddyslab.h"
#include "t.h"

static volatile size_t vz;
static size_t hide(size_t x) { return x + vz; }

struct alignas(256) Aligned256 {
	unsigned char b[300];
};
struct alignas(4096) Aligned4096 {
	int x;
};
struct Tracked {                  /* non-trivial destructor: array new adds a cookie */
	static int live;
	int v;
	Tracked() : v(42) { live++; }
	~Tracked() { live--; }
};
int Tracked::live;

static void plain_new_delete()
{
	for (size_t n : { 1, 8, 24, 100, 1000, 5000, 20000, 100000, 300000, 3 << 20 }) {
		void *p = ::operator new(hide(n));
		REQUIRE(p != nullptr);
		CHECK(bsl_owns(p) == 1);
		CHECK(((uintptr_t)p & 15) == 0);
		memset(p, 0x11, n);
		::operator delete(p);

		char *a = new char[hide(n)];
		CHECK(bsl_owns(a) == 1);
		memset(a, 0x22, n);
		delete[] a;

		/* sized delete, called explicitly */
		p = ::operator new(hide(n));
		CHECK(bsl_owns(p) == 1);
		memset(p, 0x33, n);
		::operator delete(p, n);
		a = static_cast<char *>(::operator new[](hide(n)));
		CHECK(bsl_owns(a) == 1);
		::operator delete[](a, n);
	}
	int *i = new int(7);
	CHECK(bsl_owns(i) == 1 && *i == 7);
	delete i;
	Tracked *t = new Tracked[100];
	CHECK(Tracked::live == 100 && t[99].v == 42);
	delete[] t;
	CHECK(Tracked::live == 0);
	std::unique_ptr<double[]> d(new double[1000]());
	CHECK(bsl_owns(d.get()) == 1 && d[999] == 0.0);
}

static void aligned_new()
{
	std::vector<Aligned256 *> v;
	for (int i = 0; i < 200; i++) {
		Aligned256 *a = new Aligned256;
		REQUIRE(a);
		CHECK(((uintptr_t)a & 255) == 0);
		CHECK(bsl_owns(a) == 1);
		memset(a->b, i, sizeof a->b);
		v.push_back(a);
	}
	for (size_t i = 0; i < v.size(); i++) {
		CHECK(v[i]->b[0] == (unsigned char)i && v[i]->b[299] == (unsigned char)i);
		delete v[i];
	}
	Aligned256 *arr = new Aligned256[37];
	CHECK(((uintptr_t)arr & 255) == 0);
	memset(arr, 1, sizeof(Aligned256) * 37);
	delete[] arr;
	Aligned4096 *pg = new Aligned4096;
	CHECK(((uintptr_t)pg & 4095) == 0);
	CHECK(bsl_owns(pg) == 1);
	delete pg;

	for (size_t al = 16; al <= ((size_t)1 << 22); al <<= 1)
		for (size_t n : { 1, 100, 5000, 100000, 1 << 20 }) {
			void *p = ::operator new(hide(n), std::align_val_t(al));
			REQUIRE(p);
			if ((uintptr_t)p & (al - 1)) {
				fprintf(stderr, "  operator new(%zu, align %zu) = %p\n", n, al, p);
				t_failed_case = 1;
			}
			CHECK(bsl_owns(p) == 1);
			memset(p, 0x44, n);
			if (n & 1) ::operator delete(p, std::align_val_t(al));
			else ::operator delete(p, n, std::align_val_t(al));
			void *q = ::operator new[](hide(n), std::align_val_t(al), std::nothrow);
			REQUIRE(q);
			CHECK(((uintptr_t)q & (al - 1)) == 0);
			memset(q, 0x55, n);
			::operator delete[](q, std::align_val_t(al));
		}
}

static void huge_new_fails()
{
	static const size_t huge[] = { (size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 4095, (size_t)1 << 62 };
	for (size_t n : huge) {
		void *p = ::operator new(hide(n), std::nothrow);
		CHECK(p == nullptr);
		p = ::operator new[](hide(n), std::nothrow);
		CHECK(p == nullptr);
		/* aligned forms: libstdc++'s own (GCC 12) rounds the size up to a
		 * multiple of the alignment without an overflow check, so SIZE_MAX
		 * would wrap to 0 and succeed; buddyslab's never round */
		p = ::operator new(hide(n), std::align_val_t(64), std::nothrow);
		CHECK(p == nullptr);
		p = ::operator new[](hide(n), std::align_val_t(4096), std::nothrow);
		CHECK(p == nullptr);
		char *c = new (std::nothrow) char[hide(n)];
		CHECK(c == nullptr);

		bool threw = false;
		try {
			void *q = ::operator new(hide(n));
			::operator delete(q);
		} catch (const std::bad_alloc &) {
			threw = true;
		}
		CHECK(threw);
		threw = false;
		try {
			void *q = ::operator new[](hide(n), std::align_val_t(4096));
			::operator delete[](q, std::align_val_t(4096));
		} catch (const std::bad_alloc &) {
			threw = true;
		}
		CHECK(threw);
		threw = false;
		try {
			void *q = ::operator new[](hide(n));
			::operator delete[](q);
		} catch (const std::bad_alloc &) {
			threw = true;
		}
		CHECK(threw);
	}
	/* and the allocator still works afterwards */
	std::string s(1000, 'x');
	CHECK(s.size() == 1000 && bsl_owns(s.data()) == 1);
}

/* Each of the 20 replaceable forms, called by name, on every tier. */
static void every_form()
{
	for (size_t n : { 0, 1, 24, 1000, 16384, 20000, 100000, 300000 }) {
		void *p[8];
		p[0] = ::operator new(hide(n));
		p[1] = ::operator new[](hide(n));
		p[2] = ::operator new(hide(n), std::nothrow);
		p[3] = ::operator new[](hide(n), std::nothrow);
		p[4] = ::operator new(hide(n), std::align_val_t(64));
		p[5] = ::operator new[](hide(n), std::align_val_t(8192));
		p[6] = ::operator new(hide(n), std::align_val_t(1 << 20), std::nothrow);
		p[7] = ::operator new[](hide(n), std::align_val_t(8), std::nothrow);
		static const size_t align[8] = { 16, 16, 16, 16, 64, 8192, 1 << 20, 16 };
		for (int i = 0; i < 8; i++) {
			REQUIRE(p[i]);
			CHECK(((uintptr_t)p[i] & (align[i] - 1)) == 0);
			CHECK(bsl_owns(p[i]) == 1);
			memset(p[i], i, n);
		}
		for (int i = 0; i < 8; i++)
			for (size_t j = 0; j < n; j += 997)
				CHECK(((unsigned char *)p[i])[j] == i);
		/* every delete form once per round; 12 forms for 8 blocks, so the
		 * nothrow deletes get fresh blocks of their own */
		::operator delete(p[0]);
		::operator delete[](p[1]);
		::operator delete(p[2], n);
		::operator delete[](p[3], n);
		::operator delete(p[4], std::align_val_t(64));
		::operator delete[](p[5], std::align_val_t(8192));
		::operator delete(p[6], n, std::align_val_t(1 << 20));
		::operator delete[](p[7], n, std::align_val_t(8));
		void *q[4] = { ::operator new(hide(n)), ::operator new[](hide(n)),
			       ::operator new(hide(n), std::align_val_t(256)),
			       ::operator new[](hide(n), std::align_val_t(256)) };
		for (void *x : q) CHECK(x && bsl_owns(x) == 1);
		::operator delete(q[0], std::nothrow);
		::operator delete[](q[1], std::nothrow);
		::operator delete(q[2], std::align_val_t(256), std::nothrow);
		::operator delete[](q[3], std::align_val_t(256), std::nothrow);
		for (void *x : p) CHECK(bsl_owns(x) == 0);
		for (void *x : q) CHECK(bsl_owns(x) == 0);
	}
	/* operator delete(nullptr) in each form is a no-op */
	::operator delete(nullptr);
	::operator delete[](nullptr);
	::operator delete(nullptr, std::align_val_t(64));
	::operator delete[](nullptr, (size_t)0, std::align_val_t(64));
	::operator delete(nullptr, std::nothrow);
}

static int handler_calls;
static void handler_gives_up()       /* removes itself on the third call */
{
	if (++handler_calls == 3)
		std::set_new_handler(nullptr);
}
struct HandlerError {
	int calls;
};
static void handler_throws()
{
	throw HandlerError{ ++handler_calls };
}
static struct rlimit saved_as;
static void handler_frees()          /* "frees memory": lifts the address-space limit */
{
	handler_calls++;
	setrlimit(RLIMIT_AS, &saved_as);
}
static size_t vm_size_now()
{
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%lu", &pages) != 1) pages = 0;
		fclose(f);
	}
	return pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* std::set_new_handler: new calls the handler and retries until the handler
 * is gone (then std::bad_alloc), the handler's own exception passes through
 * the C operators, and a handler that makes memory available ends the loop
 * with a block. nothrow new does not call it (src/cxx.c says why). */
static void new_handler()
{
	const size_t huge = (size_t)1 << 62;
	for (int form = 0; form < 3; form++) {
		handler_calls = 0;
		std::set_new_handler(handler_gives_up);
		bool threw = false;
		try {
			void *p = form == 0 ? ::operator new(hide(huge))
				: form == 1 ? ::operator new[](hide(huge))
				: ::operator new(hide(huge), std::align_val_t(4096));
			::operator delete(p);
		} catch (const std::bad_alloc &) {
			threw = true;
		}
		CHECK(threw);
		CHECK(handler_calls == 3);
		CHECK(std::get_new_handler() == nullptr);
	}

	handler_calls = 0;
	std::set_new_handler(handler_throws);
	int seen = 0;
	try {
		char *c = new char[hide(huge)];
		delete[] c;
	} catch (const HandlerError &e) {
		seen = e.calls;
	}
	CHECK(seen == 1 && handler_calls == 1);

	/* nothrow: NULL at once, handler untouched */
	handler_calls = 0;
	CHECK(::operator new(hide(huge), std::nothrow) == nullptr);
	CHECK(::operator new[](hide(huge), std::align_val_t(64), std::nothrow) == nullptr);
	CHECK(handler_calls == 0);

	/* mmap fails until the handler runs (RLIMIT_AS 1 MiB above the address
	 * space in use; the handler restores it): 64 MiB is above the arena's
	 * 4 MiB fallback, so the first try fails and the retry gets the block */
	handler_calls = 0;
	size_t vm = vm_size_now();
	REQUIRE(vm > 0 && getrlimit(RLIMIT_AS, &saved_as) == 0);
	struct rlimit tight = saved_as;
	tight.rlim_cur = vm + (1 << 20);
	REQUIRE(tight.rlim_cur < saved_as.rlim_cur);
	std::set_new_handler(handler_frees);
	REQUIRE(setrlimit(RLIMIT_AS, &tight) == 0);
	char *big = nullptr;
	try {
		big = new char[hide(64 << 20)];
	} catch (const std::bad_alloc &) {
	}
	setrlimit(RLIMIT_AS, &saved_as);
	std::set_new_handler(nullptr);
	REQUIRE(big);
	CHECK(handler_calls == 1);
	CHECK(bsl_owns(big) == 1);
	memset(big, 1, 64 << 20);
	delete[] big;
}

static void containers_churn()
{
	std::map<int, std::string> m;
	for (int i = 0; i < 100000; i++) m[i * 7 % 100003] = std::to_string(i) + std::string(i % 50, 'a');
	CHECK(m.size() == 100000);
	long sum = 0;
	for (auto &kv : m) sum += (long)kv.second.size();
	long want = 0;
	for (int i = 0; i < 100000; i++) want += (long)std::to_string(i).size() + i % 50;
	CHECK(sum == want);
	for (int i = 0; i < 100000; i += 2) m.erase(i * 7 % 100003);
	CHECK(m.size() == 50000);

	std::unordered_map<std::string, std::vector<int>> u;
	for (int i = 0; i < 50000; i++) u["key" + std::to_string(i % 5000)].push_back(i);
	CHECK(u.size() == 5000);
	bool ok = true;
	for (auto &kv : u) ok &= kv.second.size() == 10;
	CHECK(ok);

	std::vector<std::string> vs;
	for (int round = 0; round < 20; round++) {
		vs.clear();
		vs.shrink_to_fit();
		for (int i = 0; i < 10000; i++) vs.emplace_back(std::string((size_t)(i * 13 % 300), (char)('a' + i % 26)));
		CHECK(bsl_owns(vs.data()) == 1);
	}
	size_t total = 0;
	for (auto &s : vs) total += s.size();
	size_t want2 = 0;
	for (int i = 0; i < 10000; i++) want2 += (size_t)(i * 13 % 300);
	CHECK(total == want2);

	std::vector<int> big;
	for (int i = 0; i < 3000000; i++) big.push_back(i);
	CHECK(bsl_owns(big.data()) == 1);
	long long s2 = 0;
	for (int x : big) s2 += x;
	CHECK(s2 == 3000000LL * 2999999 / 2);

	std::list<std::unique_ptr<int>> l;
	for (int i = 0; i < 100000; i++) l.push_back(std::make_unique<int>(i));
	l.remove_if([](const std::unique_ptr<int> &p) { return *p % 3 == 0; });
	CHECK(l.size() == 66666);

	std::string str;
	for (int i = 0; i < 200000; i++) str += (char)('a' + i % 26);
	CHECK(str.size() == 200000 && bsl_owns(str.data()) == 1);
}

static void threads_new_delete()
{
	std::vector<std::thread> ts;
	bool ok[4] = { false, false, false, false };
	std::vector<int *> handoff[4];
	for (int t = 0; t < 4; t++)
		ts.emplace_back([t, &ok, &handoff] {
			std::map<int, std::vector<char>> m;
			for (int i = 0; i < 20000; i++) m[i] = std::vector<char>((size_t)(i % 100), (char)i);
			for (int i = 0; i < 1000; i++) handoff[t].push_back(new int(i));
			ok[t] = m.size() == 20000 && m[19999].size() == 99;
		});
	for (auto &th : ts) th.join();
	for (int t = 0; t < 4; t++) {
		CHECK(ok[t]);
		for (size_t i = 0; i < handoff[t].size(); i++) {
			CHECK(*handoff[t][i] == (int)i);
			delete handoff[t][i];     /* freed by another thread than the allocating one */
		}
	}
}

/* thread_local objects with destructors that free and allocate; after the threads
 * are joined, allocated and nthreads are exactly what they were (glibc runs C++
 * thread_local destructors before the pthread key destructors). */
struct TlsHolder {
	std::map<int, std::string> m;
	std::vector<char> *extra = nullptr;
	~TlsHolder()
	{
		m.clear();
		std::vector<int> tmp(1000, 1);        /* allocates during thread exit */
		extra = new std::vector<char>(5000, 'x');
		delete extra;
		(void)tmp;
	}
};
static thread_local TlsHolder tls_holder;
static thread_local std::string tls_string;

static void tls_worker(int id)
{
	for (int i = 0; i < 2000; i++) tls_holder.m[i] = std::string((size_t)(i % 64), (char)('a' + id));
	tls_string.assign(100000, 'z');
}

static void thread_local_destructors()
{
	/* warm-up thread: glibc keeps a DTV (calloc'd) with each cached stack */
	std::thread(tls_worker, 0).join();
	struct bsl_stats before, after;
	bsl_stats(&before);
	for (int round = 0; round < 10; round++) {
		std::thread t(tls_worker, round);
		t.join();
	}
	bsl_stats(&after);
	if (after.allocated != before.allocated || after.nthreads != before.nthreads) {
		fprintf(stderr, "  allocated %zu -> %zu, nthreads %llu -> %llu\n", before.allocated, after.allocated,
			(unsigned long long)before.nthreads, (unsigned long long)after.nthreads);
		t_failed_case = 1;
	}
}

int main()
{
	T_RUN(plain_new_delete);
	T_RUN(aligned_new);
	T_RUN(huge_new_fails);
	T_RUN(every_form);
	T_RUN(new_handler);
	T_RUN(containers_churn);
	T_RUN(threads_new_delete);
	T_RUN(thread_local_destructors);
	return t_done();
}
