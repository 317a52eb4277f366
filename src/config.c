/*
 * config.c - parse BUDDYSLAB_CONF into `opt` (see config.h).
 *
 * Invariants
 *  - Parsing allocates nothing (it runs at the first allocation) and keeps
 *    the default (or the earlier value of a repeated key) for a value it
 *    refuses, with one warning line that names the key, the value as given
 *    and what is allowed.
 *  - Keys and values are trimmed of white space; entries are separated by
 *    ',' (so no value contains one); empty entries are skipped.
 *  - opt.stats_file is empty or an absolute path, and so is opt.prof_prefix
 *    once config_init returns ("buddyslab" by default): a relative one is
 *    joined to the directory of start-up here, since the program may chdir
 *    before the report or a profile is written.
 *  - opt.stats_signal is 0 or a signal whose handler can return and let the
 *    program carry on: faults, SIGABRT, SIGTRAP, SIGSYS, the uncatchable ones
 *    and the ones glibc reserves (32 .. SIGRTMIN-1) are refused.
 */
#define _GNU_SOURCE
#include "config.h"
#include "sizeclass.h"
#include "output.h"
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

struct bsl_options opt = {
	.mmap_threshold = 128 * 1024,
	.stats = 0,
	.thp = -1,
	.tcache = 1,
	.decay_ms = 1000,
	.purge_free = 0,
	.background_thread = 0,
	.large_cache = 64 << 20,
	.stats_signal = 0,
	.stats_file = "",
	.secure = 0,
	.prof = 0,
	.prof_sample = 512 * 1024,
	.prof_final = 1,
	.prof_signal = 0,
	.prof_interval = 0,
	.prof_prefix = "",
};

struct enum_name { const char *name; long value; };

static const struct enum_name purge_names[] = {
	{ "dontneed", 0 }, { "free", 1 }, { NULL, 0 },
};

/* secure: a '+'-separated set of these (secure.h); 1 = all */
static const struct enum_name secure_names[] = {
	{ "0", 0 }, { "1", SEC_ALL }, { "all", SEC_ALL }, { "guard", SEC_GUARD },
	{ "canary", SEC_CANARY }, { "fill", SEC_FILL }, { "shuffle", SEC_SHUFFLE },
	{ "quarantine", SEC_QUARANTINE }, { "size0", SEC_SIZE0 }, { "sized", SEC_SIZED }, { NULL, 0 },
};

static const struct enum_name thp_names[] = {
	{ "default", -1 }, { "never", 0 }, { "madvise", 1 }, { NULL, 0 },
};

enum opt_kind {
	K_NUM,          /* a number in min..max */
	K_SIZE,         /* bytes in min..max; k/m/g/t suffixes */
	K_ENUM,         /* one of names */
	K_SET,          /* names joined with '+', values or'ed */
	K_SIGNAL,       /* 0 or a signal number signal_refusal() accepts */
	K_PATH,         /* a file path, kept absolute */
};

struct option_def {
	const char *key;
	enum opt_kind kind;
	long *lval;             /* K_NUM, K_ENUM, K_SET, K_SIGNAL, K_SIZE (or zval) */
	union {
		size_t *zval;   /* K_SIZE held in a size_t */
		char *sval;     /* K_PATH: char[BSL_PATH_MAX] */
	};
	long min, max;          /* K_NUM, K_SIZE */
	const struct enum_name *names;   /* K_ENUM, K_SET */
	const char *doc;
};

static const struct option_def defs[] = {
	{ "mmap_threshold", K_SIZE, NULL, { &opt.mmap_threshold }, SLAB_MAX, CHUNK_SIZE, NULL,
	  "requests above this many bytes are mmap'd (suffix k/m allowed)" },
	{ "stats", K_NUM, &opt.stats, { NULL }, 0, 1, NULL, "1: print buddyinfo/slabinfo/stats at exit" },
	{ "thp", K_ENUM, &opt.thp, { NULL }, 0, 0, thp_names, "default | never | madvise" },
	{ "tcache", K_NUM, &opt.tcache, { NULL }, 0, 1, NULL, "0: no per-thread caches" },
	{ "colour", K_NUM, &opt.colour, { NULL }, 0, 1, NULL,
	  "1: slab colouring (each slab's first object offset by a cycling cache line)" },
	{ "decay_ms", K_NUM, &opt.decay_ms, { NULL }, -1, 3600000, NULL,
	  "free pages idle this many ms go back to the OS; 0 at once, -1 never" },
	{ "purge", K_ENUM, &opt.purge_free, { NULL }, 0, 0, purge_names, "dontneed | free (madvise advice)" },
	{ "background_thread", K_NUM, &opt.background_thread, { NULL }, 0, 1, NULL,
	  "1: a background thread purges (else slow paths do)" },
	{ "large_cache", K_SIZE, &opt.large_cache, { NULL }, 0, 1L << 40, NULL,
	  "bytes of freed large mappings kept for reuse (0: unmap at once)" },
	{ "stats_signal", K_SIGNAL, &opt.stats_signal, { NULL }, 0, 0, NULL,
	  "signal number that prints the report (0: none)" },
	{ "stats_file", K_PATH, NULL, { .sval = opt.stats_file }, 0, 0, NULL,
	  "the report is appended to this file (empty: to stderr)" },
	{ "secure", K_SET, &opt.secure, { NULL }, 0, 0, secure_names,
	  "0 | 1 (all) | guard+canary+fill+shuffle+quarantine+size0+sized: hardening checks" },
	{ "prof", K_NUM, &opt.prof, { NULL }, 0, 1, NULL, "1: sample allocations for heap profiles" },
	{ "prof_sample", K_SIZE, &opt.prof_sample, { NULL }, 1, 1L << 40, NULL,
	  "mean bytes allocated between two samples (suffix k/m allowed)" },
	{ "prof_final", K_NUM, &opt.prof_final, { NULL }, 0, 1, NULL, "1: dump a heap profile at exit" },
	{ "prof_signal", K_SIGNAL, &opt.prof_signal, { NULL }, 0, 0, NULL,
	  "signal number that dumps a heap profile (0: none)" },
	{ "prof_interval", K_SIZE, &opt.prof_interval, { NULL }, 0, 1L << 50, NULL,
	  "dump a heap profile every this many bytes allocated (0: never)" },
	{ "prof_prefix", K_PATH, NULL, { .sval = opt.prof_prefix }, 0, 0, NULL,
	  "heap profiles go to PREFIX.PID.SEQ.heap (default: buddyslab, in the directory of "
	  "start-up)" },
};
#define NDEFS (sizeof defs / sizeof defs[0])

/* ------------------------------------------------------------- signals */

/* Why signal v cannot be stats_signal (NULL: it can). *name gets the
 * signal's name when the reason needs it. */
static const char *signal_refusal(long v, const char **name)
{
#define FAULT "reports a fault: once the handler returns, the faulting instruction runs " \
	      "again, and the program would print reports forever instead of dying"
	static const struct { int sig; const char *name; const char *why; } refused[] = {
		{ SIGSEGV, "SIGSEGV", FAULT }, { SIGBUS, "SIGBUS", FAULT },
		{ SIGILL, "SIGILL", FAULT }, { SIGFPE, "SIGFPE", FAULT },
		{ SIGTRAP, "SIGTRAP", "belongs to debuggers (breakpoints, single steps)" },
		{ SIGSYS, "SIGSYS", "reports a forbidden system call: the program must die of it" },
		{ SIGABRT, "SIGABRT", "is abort()'s: the program must die of it" },
		{ SIGKILL, "SIGKILL", "cannot be caught" }, { SIGSTOP, "SIGSTOP", "cannot be caught" },
	};
	*name = NULL;
	if (v < 0)
		return "not a signal number";
	if (v > SIGRTMAX)
		return "above SIGRTMAX";
	if (v >= 32 && v < SIGRTMIN)
		return "glibc reserves signals 32 .. SIGRTMIN-1 for its threads";
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		if (refused[i].sig == v) {
			*name = refused[i].name;
			return refused[i].why;
		}
	return NULL;
}

/* "0 (none), 1-3, 10, 12-18, ...": the signals signal_refusal accepts */
static void text_signal_range(struct text *t)
{
	const char *name;
	text_printf(t, "0 (none)");
	for (long s = 1; s <= SIGRTMAX; s++) {
		if (signal_refusal(s, &name) || (s > 1 && !signal_refusal(s - 1, &name)))
			continue;
		long e = s;
		while (e < SIGRTMAX && !signal_refusal(e + 1, &name))
			e++;
		if (e == s)
			text_printf(t, ", %ld", s);
		else
			text_printf(t, ", %ld-%ld", s, e);
	}
	text_printf(t, "; SIGRTMIN is %d, SIGRTMAX %d", (int)SIGRTMIN, (int)SIGRTMAX);
}

/* -------------------------------------------------------------- values */

/* Parse [len] chars of s as a number with an optional k/m/g/t suffix. */
static bool parse_number(const char *s, size_t len, long *out)
{
	bool neg = len && s[0] == '-';
	size_t i = neg;
	if (i == len)
		return false;
	unsigned long v = 0;
	size_t first = i;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (unsigned long)LONG_MAX / 10)
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == first)
		return false;
	unsigned shift = 0;
	if (i + 1 == len) {
		switch (s[i] | 0x20) {
		case 'k': shift = 10; break;
		case 'm': shift = 20; break;
		case 'g': shift = 30; break;
		case 't': shift = 40; break;
		default: return false;
		}
		i++;
	}
	if (i != len || (shift && v > ((unsigned long)LONG_MAX >> shift)))
		return false;
	v <<= shift;
	if (v > (unsigned long)LONG_MAX)
		return false;
	*out = neg ? -(long)v : (long)v;
	return true;
}

static bool parse_names(const struct option_def *d, const char *v, size_t len, long *out)
{
	*out = 0;
	while (len) {
		const char *plus = d->kind == K_SET ? memchr(v, '+', len) : NULL;
		size_t wlen = plus ? (size_t)(plus - v) : len;
		const struct enum_name *n = d->names;
		while (n->name && (strlen(n->name) != wlen || memcmp(n->name, v, wlen) != 0))
			n++;
		if (!n->name)
			return false;
		*out |= n->value;
		if (!plus)
			return true;
		len -= wlen + 1;
		v = plus + 1;
		if (!len)
			return false;   /* a trailing '+' */
	}
	return false;
}

/* v as k/m/g/t when it is an exact multiple */
static void text_size(struct text *t, long v)
{
	static const char suffix[] = "kmgt";
	int i = -1;
	while (i < 3 && v && v % 1024 == 0) {
		v /= 1024;
		i++;
	}
	if (i >= 0)
		text_printf(t, "%ld%c", v, suffix[i]);
	else
		text_printf(t, "%ld", v);
}

/* What d accepts, for a warning. */
static void text_allowed(struct text *t, const struct option_def *d)
{
	const char *sep = "";
	switch (d->kind) {
	case K_NUM:
		text_printf(t, "%ld .. %ld", d->min, d->max);
		break;
	case K_SIZE:
		text_size(t, d->min);
		text_printf(t, " .. ");
		text_size(t, d->max);
		text_printf(t, " bytes");
		break;
	case K_ENUM:
		for (const struct enum_name *n = d->names; n->name; n++, sep = ", ")
			text_printf(t, "%s%s", sep, n->name);
		break;
	case K_SET:
		text_printf(t, "0, 1, all, or a '+'-joined set of ");
		for (const struct enum_name *n = d->names; n->name; n++)
			if (is_pow2((size_t)n->value)) {
				text_printf(t, "%s%s", sep, n->name);
				sep = ", ";
			}
		break;
	case K_SIGNAL:
		text_signal_range(t);
		break;
	case K_PATH:
		text_printf(t, "a file path of at most %d bytes, relative ones to the directory "
			    "of start-up", BSL_PATH_MAX - 1);
		break;
	}
}

/* The value in effect, as bsl_config_print shows it. */
static void text_value(struct text *t, const struct option_def *d)
{
	if (d->kind == K_PATH) {
		text_printf(t, "%s", d->sval);
		return;
	}
	long v = d->lval ? *d->lval : (long)*d->zval;
	const char *word = NULL;        /* the last name of the value: "all", not "1" */
	for (const struct enum_name *n = d->names; n && n->name; n++)
		if (n->value == v)
			word = n->name;
	if (word) {
		text_printf(t, "%s", word);
		return;
	}
	if (d->kind == K_SET) {         /* its names joined with '+' */
		const char *sep = "";
		for (const struct enum_name *n = d->names; n->name; n++)
			if (is_pow2((size_t)n->value) && (v & n->value)) {
				text_printf(t, "%s%s", sep, n->name);
				sep = "+";
			}
		return;
	}
	text_printf(t, "%ld", v);
}

#define SHOW_MAX 200    /* a bad value is quoted up to this many chars */

/* One warning line: the key, the value as given, why (when there is more to
 * say than "not allowed"), what is allowed, and the value kept. */
static void warn_bad(const struct option_def *d, const char *val, size_t vlen,
		     const char *name, const char *why)
{
	char buf[1024];
	struct text t = TEXT_INIT(buf, OUT_WARN);
	text_printf(&t, "buddyslab: warning: BUDDYSLAB_CONF: bad value \"%.*s%s\" for %s",
		    (int)(vlen < SHOW_MAX ? vlen : SHOW_MAX), val, vlen > SHOW_MAX ? "..." : "", d->key);
	if (why)
		text_printf(&t, ": %s%s%s", name ? name : "", name ? " " : "", why);
	text_printf(&t, " (allowed: ");
	text_allowed(&t, d);
	text_printf(&t, "); keeping \"");
	text_value(&t, d);
	text_printf(&t, "\"\n");
	text_flush(&t);
}

/* A K_PATH value: absolute, or joined to the current (start-up) directory. */
static void apply_path(const struct option_def *d, const char *val, size_t vlen)
{
	char path[BSL_PATH_MAX];
	size_t n = 0;
	if (vlen && val[0] != '/') {
		if (!getcwd(path, sizeof path)) {
			warn_bad(d, val, vlen, NULL, "the current directory cannot be read");
			return;
		}
		n = strlen(path);
		if (n && path[n - 1] != '/' && n + 1 < sizeof path)
			path[n++] = '/';
	}
	if (!vlen || n + vlen >= sizeof path) {
		warn_bad(d, val, vlen, NULL, vlen ? "too long" : "empty");
		return;
	}
	memcpy(path + n, val, vlen);
	path[n + vlen] = 0;
	memcpy(d->sval, path, n + vlen + 1);
}

static void apply(const char *key, size_t klen, const char *val, size_t vlen)
{
	const struct option_def *d = defs;
	while (d < defs + NDEFS && (strlen(d->key) != klen || memcmp(d->key, key, klen) != 0))
		d++;
	if (d == defs + NDEFS) {
		char buf[1024];
		struct text t = TEXT_INIT(buf, OUT_WARN);
		text_printf(&t, "buddyslab: warning: BUDDYSLAB_CONF: unknown key \"%.*s\" ignored "
			    "(keys: ", (int)(klen < SHOW_MAX ? klen : SHOW_MAX), key);
		for (size_t i = 0; i < NDEFS; i++)
			text_printf(&t, "%s%s", i ? ", " : "", defs[i].key);
		text_printf(&t, ")\n");
		text_flush(&t);
		return;
	}
	if (d->kind == K_PATH) {
		apply_path(d, val, vlen);
		return;
	}
	long v = 0;
	bool ok;
	switch (d->kind) {
	case K_ENUM: case K_SET:
		ok = parse_names(d, val, vlen, &v);
		break;
	case K_SIGNAL:
		ok = parse_number(val, vlen, &v);
		break;
	default:
		ok = parse_number(val, vlen, &v) && v >= d->min && v <= d->max;
		break;
	}
	if (!ok) {
		warn_bad(d, val, vlen, NULL, NULL);
		return;
	}
	const char *name, *why;
	if (d->kind == K_SIGNAL && (why = signal_refusal(v, &name))) {
		warn_bad(d, val, vlen, name, why);
		return;
	}
	if (d->lval)
		*d->lval = v;
	else
		*d->zval = (size_t)v;
}

#define STR_AND_LEN(s) (s), sizeof(s) - 1

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim [*s, *end) of white space at both ends. */
static void trim(const char **s, const char **end)
{
	while (*s < *end && is_space(**s))
		(*s)++;
	while (*end > *s && is_space((*end)[-1]))
		(*end)--;
}

static void parse(const char *s)
{
	while (*s) {
		const char *next = strchrnul(s, ',');
		const char *b = s, *e = next;
		trim(&b, &e);
		const char *colon = memchr(b, ':', (size_t)(e - b));
		if (colon) {
			const char *kb = b, *ke = colon, *vb = colon + 1, *ve = e;
			trim(&kb, &ke);
			trim(&vb, &ve);
			apply(kb, (size_t)(ke - kb), vb, (size_t)(ve - vb));
		} else if (e > b) {
			size_t n = (size_t)(e - b);
			bsl_warnf("BUDDYSLAB_CONF: expected key:value, got \"%.*s\"",
				  (int)(n < SHOW_MAX ? n : SHOW_MAX), b);
		}
		s = *next ? next + 1 : next;
	}
}

void config_init(void)
{
	const char *s = getenv("BUDDYSLAB_CONF");
	if (s)
		parse(s);
	if (opt.prof && !opt.prof_prefix[0])
		apply(STR_AND_LEN("prof_prefix"), STR_AND_LEN("buddyslab"));
}

void config_tcache_off(void)
{
	opt.tcache = 0;
}

void config_secure_keep(long features)
{
	opt.secure &= features;
}

void config_background_off(void)
{
	__atomic_store_n(&opt.background_thread, 0, __ATOMIC_RELAXED);
}

void config_set_mmap_threshold(size_t bytes)
{
	size_t v = bytes < SLAB_MAX ? SLAB_MAX : bytes > CHUNK_SIZE ? CHUNK_SIZE : bytes;
	__atomic_store_n(&opt.mmap_threshold, v, __ATOMIC_RELAXED);
}

void config_print(int fd)
{
	char buf[1024];
	struct text t = TEXT_INIT(buf, fd);
	for (size_t i = 0; i < NDEFS; i++) {
		text_printf(&t, "%s:", defs[i].key);
		text_value(&t, &defs[i]);
		text_printf(&t, "\t# %s\n", defs[i].doc);
	}
	text_flush(&t);
}
