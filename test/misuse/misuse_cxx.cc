// misuse_cxx.cc - the C++ cases of test/misuse.sh, one per run (see misuse.c).
//
//   misuse_cxx CASE     do CASE's one misuse; if the program survives it,
//                       print a one-word observation and exit 0
//   misuse_cxx --list   the case names
//
// The operators are called by name (::operator new, ::operator delete[], ...)
// so that each case makes exactly the calls it names, at -O0 with
// -fsized-deallocation; cxx_ok is correct use and must print "ok" anywhere.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

static void say(const char *word)
{
	std::puts(word);
	std::fflush(stdout);
}

// ::operator delete(p, size) with a size the block was not made with
static void sized_delete_wrong(size_t n)
{
	void *volatile p = ::operator new(n);
	::operator delete(p, n + 4096);
	say("missed");
}

// the plain delete of a block from new[]
static void delete_array_mismatch(size_t n)
{
	void *volatile p = ::operator new[](n);
	::operator delete(p);
	say("missed");
}

// the array delete of a block from plain new
static void array_delete_mismatch(size_t n)
{
	void *volatile p = ::operator new(n);
	::operator delete[](p);
	say("missed");
}

struct Pod { char bytes[24]; };
struct WithDtor {        // new[] of it stores the count before the elements
	char bytes[24];
	~WithDtor() { std::memset(bytes, 0, sizeof bytes); }
};

// Correct use: every pairing the mismatch cases get wrong, done right, in
// each tier; delete-expressions that pass sizes (sized deallocation) and an
// array with a cookie; containers.
static void cxx_ok(size_t)
{
	static const size_t sizes[] = { 40, 40000, (size_t)1 << 20 };
	for (size_t n : sizes) {
		void *volatile p = ::operator new(n);
		std::memset(p, 1, n);
		::operator delete(p, n);
		p = ::operator new[](n);
		std::memset(p, 2, n);
		::operator delete[](p, n);
		p = ::operator new(n);
		::operator delete(p);
		p = ::operator new[](n);
		::operator delete[](p);
		p = ::operator new(n, std::align_val_t(64));
		::operator delete(p, n, std::align_val_t(64));
	}
	Pod *volatile a = new Pod;
	delete a;
	WithDtor *volatile b = new WithDtor[3];
	delete[] b;
	WithDtor *volatile c = new WithDtor[5000];
	delete[] c;
	std::vector<std::string> v;
	for (int i = 0; i < 1000; i++)
		v.push_back(std::string(static_cast<size_t>(i % 50 + 1), 'x'));
	size_t total = 0;
	for (const std::string &s : v)
		total += s.size();
	say(total == 25500 ? "ok" : "bad");
}

#define TIERS(kind) \
	{ #kind "_small", kind, 40 }, { #kind "_medium", kind, 40000 }, { #kind "_large", kind, (size_t)1 << 20 }

static const struct { const char *name; void (*fn)(size_t n); size_t n; } cases[] = {
	TIERS(sized_delete_wrong),
	{ "delete_array_mismatch", delete_array_mismatch, 40 },
	{ "array_delete_mismatch", array_delete_mismatch, 40 },
	{ "cxx_ok", cxx_ok, 0 },
};

int main(int argc, char **argv)
{
	if (argc == 2 && !std::strcmp(argv[1], "--list")) {
		for (const auto &c : cases)
			std::puts(c.name);
		return 0;
	}
	for (const auto &c : cases)
		if (argc == 2 && !std::strcmp(argv[1], c.name)) {
			c.fn(c.n);
			return 0;
		}
	std::fprintf(stderr, "usage: %s CASE | --list\n", argv[0]);
	return 2;
}
