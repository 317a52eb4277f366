/*
 * config.c - parse BUDDYSLAB_CONF into `opt` (see config.h).
 */
#include "config.h"
#include "sizeclass.h"
#include "secure.h"
#include <stdlib.h>
#include <string.h>
#include <limits.h>

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
	.secure = 0,
};

struct enum_name { const char *name; long value; };

static const struct enum_name purge_names[] = {
	{ "dontneed", 0 }, { "free", 1 }, { NULL, 0 },
};

/* secure: a '+'-separated set of these (secure.h); 1 = all */
static const struct enum_name secure_names[] = {
	{ "0", 0 }, { "1", SEC_ALL }, { "all", SEC_ALL }, { "guard", SEC_GUARD },
	{ "canary", SEC_CANARY }, { "fill", SEC_FILL }, { "shuffle", SEC_SHUFFLE }, { NULL, 0 },
};

static const struct enum_name thp_names[] = {
	{ "default", -1 }, { "never", 0 }, { "madvise", 1 }, { NULL, 0 },
};

struct option_def {
	const char *key;
	long *lval;             /* integer or enum options */
	size_t *zval;           /* byte-size options */
	long min, max;
	const struct enum_name *names;   /* enum options: the accepted words */
	const char *doc;
};

static const struct option_def defs[] = {
	{ "mmap_threshold", NULL, &opt.mmap_threshold, SLAB_MAX, CHUNK_SIZE, NULL,
	  "requests above this many bytes are mmap'd (suffix k/m allowed)" },
	{ "stats", &opt.stats, NULL, 0, 1, NULL, "1: print buddyinfo/slabinfo/stats at exit" },
	{ "thp", &opt.thp, NULL, -1, 1, thp_names, "default | never | madvise" },
	{ "tcache", &opt.tcache, NULL, 0, 1, NULL, "0: no per-thread caches" },
	{ "decay_ms", &opt.decay_ms, NULL, -1, 3600000, NULL,
	  "free pages idle this many ms go back to the OS; 0 at once, -1 never" },
	{ "purge", &opt.purge_free, NULL, 0, 1, purge_names, "dontneed | free (madvise advice)" },
	{ "background_thread", &opt.background_thread, NULL, 0, 1, NULL,
	  "1: a background thread purges (else slow paths do)" },
	{ "large_cache", &opt.large_cache, NULL, 0, 1L << 40, NULL,
	  "bytes of freed large mappings kept for reuse (0: unmap at once)" },
	{ "stats_signal", &opt.stats_signal, NULL, 0, 64, NULL,
	  "signal number that prints the views to stderr (0: none)" },
	{ "secure", &opt.secure, NULL, 0, SEC_ALL, secure_names,
	  "0 | 1 (all) | guard+canary+fill+shuffle: hardening checks" },
};
#define NDEFS (sizeof defs / sizeof defs[0])

/* The option whose value is a set: names joined with '+', values or'ed. */
static bool is_set(const struct option_def *d) { return d->names == secure_names; }

/* Parse [len] chars of s as a number with an optional k/m/g suffix. */
static bool parse_number(const char *s, size_t len, long *out)
{
	bool neg = len && s[0] == '-';
	size_t i = neg;
	if (i == len)
		return false;
	unsigned long v = 0;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (unsigned long)LONG_MAX / 10)
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	unsigned shift = 0;
	if (i + 1 == len) {
		switch (s[i] | 0x20) {
		case 'k': shift = 10; break;
		case 'm': shift = 20; break;
		case 'g': shift = 30; break;
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

static bool parse_value(const struct option_def *d, const char *v, size_t len, long *out)
{
	if (d->names) {
		*out = 0;
		while (len) {
			const char *plus = is_set(d) ? memchr(v, '+', len) : NULL;
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
	return parse_number(v, len, out) && *out >= d->min && *out <= d->max;
}

static void apply(const char *key, size_t klen, const char *val, size_t vlen)
{
	for (size_t i = 0; i < NDEFS; i++) {
		const struct option_def *d = &defs[i];
		if (strlen(d->key) != klen || memcmp(d->key, key, klen) != 0)
			continue;
		long v = 0;
		if (!parse_value(d, val, vlen, &v)) {
			bsl_warn("BUDDYSLAB_CONF: bad value for", d->key);
			return;
		}
		if (d->lval)
			*d->lval = v;
		else
			*d->zval = (size_t)v;
		return;
	}
	char name[64];
	size_t n = klen < sizeof name - 1 ? klen : sizeof name - 1;
	memcpy(name, key, n);
	name[n] = 0;
	bsl_warn("BUDDYSLAB_CONF: unknown key", name);
}

void config_init(void)
{
	const char *s = getenv("BUDDYSLAB_CONF");
	if (!s)
		return;
	while (*s) {
		const char *end = strchr(s, ',');
		if (!end)
			end = s + strlen(s);
		const char *colon = memchr(s, ':', (size_t)(end - s));
		if (colon)
			apply(s, (size_t)(colon - s), colon + 1, (size_t)(end - colon - 1));
		else if (end > s)
			bsl_warn("BUDDYSLAB_CONF: expected key:value, got", s);
		s = *end ? end + 1 : end;
	}
}

void config_print(int fd)
{
	for (size_t i = 0; i < NDEFS; i++) {
		const struct option_def *d = &defs[i];
		long v = d->lval ? *d->lval : (long)*d->zval;
		const char *word = NULL;
		for (const struct enum_name *n = d->names; n && n->name; n++)
			if (n->value == v)
				word = n->name;
		if (!word && is_set(d)) {     /* a set: its names joined with '+' */
			bsl_printf(fd, "%s:", d->key);
			const char *sep = "";
			for (const struct enum_name *n = d->names; n->name; n++)
				if (n->value && (n->value & (n->value - 1)) == 0 && (v & n->value)) {
					bsl_printf(fd, "%s%s", sep, n->name);
					sep = "+";
				}
			bsl_printf(fd, "\t# %s\n", d->doc);
		} else if (word)
			bsl_printf(fd, "%s:%s\t# %s\n", d->key, word, d->doc);
		else
			bsl_printf(fd, "%s:%ld\t# %s\n", d->key, v, d->doc);
	}
}
