/*
 * stackwalk.c - see stackwalk.h: the profiler's stack walker.
 *
 * A frame is (pc, sp, rbp). Its rule, from the FDE that covers pc (pc - 1
 * for a return address, which may lie past the end of a call at the end of
 * a function), says where the caller's values are:
 *   CFA = sp or rbp, plus an offset   (the caller's stack pointer)
 *   the return address at CFA + ra_off
 *   the caller's rbp at CFA + rbp_off, or unchanged, or lost (saved in a way
 *   this file does not read: a later frame whose CFA is rbp-based cannot be
 *   walked)
 * The rule is what libgcc's DWARF interpreter computes for those three
 * columns; the other registers do not matter to a walk that needs only
 * return addresses, unless a CFA is computed from them (then: not read).
 *
 * Invariants
 *  - Reads only what libgcc's unwinder reads for the same walk: the unwind
 *    tables of loaded objects, found with glibc's lock-free _dl_find_object,
 *    and the stack slots their rules name. A CFA must lie above the frame's
 *    stack pointer, so every walk ends.
 *  - Never allocates and takes no lock. The rule cache (RULES_CAP slots,
 *    open addressing, keyed by lookup address) is mapped at the first walk
 *    and emptied when half full; its callers serialise (stackwalk.h).
 *  - A cached rule is used only for the object it was decoded from: each
 *    entry names its object (link map and start address, as _dl_find_object
 *    reports them), and a walk asks _dl_find_object once for each object its
 *    frames enter. After a dlclose, another object at the same addresses has
 *    another identity and its rules are decoded afresh. (A residual case: a
 *    different object loaded at the same start, with the same size, the same
 *    tables address and a link map at the same address is taken for the old
 *    one; the same file reloaded, the common case, has the same rules.)
 *  - The outermost frame ends a walk the way it ends libgcc's: a return
 *    address rule "undefined" (glibc's _start), no FDE in an object that
 *    has unwind tables, or a return address of 0.
 */
#define _GNU_SOURCE
#include "stackwalk.h"
#include "os.h"
#include <dlfcn.h>
#include <string.h>

#define RULES_CAP 4096u               /* a power of two */
#define NSTATES   8                   /* DW_CFA_remember_state depth */

enum { DW_RBP = 6, DW_RSP = 7, DW_RA = 16 };
enum rule_kind { RULE_OK, RULE_LAST, RULE_NOFDE, RULE_UNREAD };
enum { RBP_SAME = 0x7fff, RBP_LOST = 0x7ffe };    /* rbp_off values that are not offsets */

/* An object as _dl_find_object gives it; map NULL: no object covers the address. */
struct object {
	const void *map, *tables;
	uintptr_t start, end;
};

struct rule {
	uintptr_t addr;       /* lookup address; 0: empty slot */
	struct object obj;    /* the object it was decoded from */
	int32_t cfa_off;
	int16_t ra_off;
	int16_t rbp_off;      /* or RBP_SAME, RBP_LOST */
	uint8_t cfa_reg;      /* DW_RSP or DW_RBP */
	uint8_t kind;         /* enum rule_kind */
};

struct stackwalk_stats stackwalk_stats;
static struct rule *rules;            /* RULES_CAP slots; NULL until the first walk */
static uint32_t nrules;
static bool rules_failed;             /* the cache could not be mapped */

/* ------------------------------------------------------ reading tables */

static uint64_t uleb(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;
	for (unsigned shift = 0; *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	return v;
}

static int64_t sleb(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;
	while (*p < end) {
		b = *(*p)++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	if (shift < 64 && (b & 0x40))
		v |= ~(uint64_t)0 << shift;
	return (int64_t)v;
}

/* A pointer in DW_EH_PE encoding enc at *p (absolute or pc-relative; the
 * others are not used by .eh_frame on x86-64). false: not read. */
static bool encoded(const uint8_t **p, const uint8_t *end, uint8_t enc, uintptr_t *out)
{
	const uint8_t *at = *p;
	uint64_t v;
	int64_t s;
	switch (enc & 0x0f) {
	case 0x00: case 0x04: case 0x0c:              /* absptr, udata8, sdata8 */
		if (end - at < 8) return false;
		memcpy(&v, at, 8); *p += 8; break;
	case 0x03:                                     /* udata4 */
		if (end - at < 4) return false;
		{ uint32_t u; memcpy(&u, at, 4); v = u; } *p += 4; break;
	case 0x0b:                                     /* sdata4 */
		if (end - at < 4) return false;
		{ int32_t i; memcpy(&i, at, 4); v = (uint64_t)(int64_t)i; } *p += 4; break;
	case 0x02:                                     /* udata2 */
		if (end - at < 2) return false;
		{ uint16_t u; memcpy(&u, at, 2); v = u; } *p += 2; break;
	case 0x0a:                                     /* sdata2 */
		if (end - at < 2) return false;
		{ int16_t i; memcpy(&i, at, 2); v = (uint64_t)(int64_t)i; } *p += 2; break;
	case 0x01: v = uleb(p, end); break;
	case 0x09: s = sleb(p, end); v = (uint64_t)s; break;
	default: return false;
	}
	switch (enc & 0x70) {
	case 0x00: break;
	case 0x10: v += (uintptr_t)at; break;          /* pcrel */
	default: return false;
	}
	*out = (uintptr_t)v;
	return true;
}

/* --------------------------------------------------- the CFA program */

enum how { SAME, OFFSET, UNDEF, OTHER };

struct cols {                         /* the three columns a walk needs */
	uint8_t cfa_reg, ra_how, rbp_how;
	bool cfa_bad;                     /* by an expression */
	int64_t cfa_off, ra_off, rbp_off;
};

struct cie {
	const uint8_t *insns, *end;
	uint64_t code_align;
	int64_t data_align;
	uint64_t ra_reg;
	uint8_t fde_enc;
	bool aug_z;
};

struct run {                          /* one execution of CIE or FDE instructions */
	const struct cie *cie;
	struct cols c, init;              /* current; after the CIE's instructions */
	struct cols saved[NSTATES];
	unsigned nsaved;
	uintptr_t loc, target;
};

static void set_col(struct cols *c, uint64_t reg, enum how how, int64_t off, uint64_t ra_reg)
{
	if (reg == ra_reg) {
		c->ra_how = (uint8_t)how;
		c->ra_off = off;
	} else if (reg == DW_RBP) {
		c->rbp_how = (uint8_t)how;
		c->rbp_off = off;
	}
}

static void restore_col(struct cols *c, const struct cols *init, uint64_t reg, uint64_t ra_reg)
{
	if (reg == ra_reg)
		set_col(c, reg, (enum how)init->ra_how, init->ra_off, ra_reg);
	else if (reg == DW_RBP)
		set_col(c, reg, (enum how)init->rbp_how, init->rbp_off, ra_reg);
}

/* A register rule instruction (op): 1 done, 0 not one, -1 malformed. */
static int reg_insn(struct run *r, uint8_t op, const uint8_t **p, const uint8_t *end)
{
	const struct cie *ci = r->cie;
	struct cols *c = &r->c;
	uint64_t reg, u;
	switch (op) {
	case 0x05:                                   /* offset_extended */
		reg = uleb(p, end);
		set_col(c, reg, OFFSET, (int64_t)uleb(p, end) * ci->data_align, ci->ra_reg);
		return 1;
	case 0x11:                                   /* offset_extended_sf */
		reg = uleb(p, end);
		set_col(c, reg, OFFSET, sleb(p, end) * ci->data_align, ci->ra_reg);
		return 1;
	case 0x2f:                                   /* GNU_negative_offset_extended */
		reg = uleb(p, end);
		set_col(c, reg, OFFSET, -(int64_t)uleb(p, end) * ci->data_align, ci->ra_reg);
		return 1;
	case 0x06:                                   /* restore_extended */
		restore_col(c, &r->init, uleb(p, end), ci->ra_reg);
		return 1;
	case 0x07: set_col(c, uleb(p, end), UNDEF, 0, ci->ra_reg); return 1;
	case 0x08: set_col(c, uleb(p, end), SAME, 0, ci->ra_reg); return 1;
	case 0x09: case 0x14: case 0x15:             /* register, val_offset(_sf) */
		reg = uleb(p, end);
		uleb(p, end);
		set_col(c, reg, OTHER, 0, ci->ra_reg);
		return 1;
	case 0x10: case 0x16:                        /* expression, val_expression */
		reg = uleb(p, end);
		u = uleb(p, end);
		if ((uint64_t)(end - *p) < u)
			return -1;
		*p += u;
		set_col(c, reg, OTHER, 0, ci->ra_reg);
		return 1;
	}
	return 0;
}

/* A CFA or state instruction (op): 1 done, 0 not one, -1 malformed. */
static int cfa_insn(struct run *r, uint8_t op, const uint8_t **p, const uint8_t *end)
{
	struct cols *c = &r->c;
	uint64_t u;
	switch (op) {
	case 0x0a:                                   /* remember_state */
		if (r->nsaved == NSTATES)
			return -1;
		r->saved[r->nsaved++] = *c;
		return 1;
	case 0x0b:                                   /* restore_state */
		if (!r->nsaved)
			return -1;
		*c = r->saved[--r->nsaved];
		return 1;
	case 0x0c: case 0x12:                        /* def_cfa, def_cfa_sf */
		c->cfa_reg = (uint8_t)uleb(p, end);
		c->cfa_off = op == 0x0c ? (int64_t)uleb(p, end) : sleb(p, end) * r->cie->data_align;
		c->cfa_bad = false;
		return 1;
	case 0x0d:                                   /* def_cfa_register */
		c->cfa_reg = (uint8_t)uleb(p, end);
		c->cfa_bad = false;
		return 1;
	case 0x0e: c->cfa_off = (int64_t)uleb(p, end); return 1;      /* def_cfa_offset */
	case 0x13: c->cfa_off = sleb(p, end) * r->cie->data_align; return 1;
	case 0x0f:                                   /* def_cfa_expression */
		u = uleb(p, end);
		if ((uint64_t)(end - *p) < u)
			return -1;
		*p += u;
		c->cfa_bad = true;
		return 1;
	case 0x2e: uleb(p, end); return 1;           /* GNU_args_size */
	case 0x00: return 1;                         /* nop */
	}
	return 0;
}

/* Run instructions [p, end) until the location passes r->target. false:
 * an instruction this file does not know (the frame is then not read). */
static bool run_insns(struct run *r, const uint8_t *p, const uint8_t *end)
{
	const struct cie *ci = r->cie;
	while (p < end) {
		uint8_t op = *p++, low = op & 0x3f;
		uint64_t u = 0;
		uintptr_t loc;
		switch (op & 0xc0) {
		case 0x40:                                   /* advance_loc */
			r->loc += low * ci->code_align;
			if (r->loc > r->target)
				return true;
			continue;
		case 0x80:                                   /* offset */
			set_col(&r->c, low, OFFSET, (int64_t)uleb(&p, end) * ci->data_align, ci->ra_reg);
			continue;
		case 0xc0:                                   /* restore */
			restore_col(&r->c, &r->init, low, ci->ra_reg);
			continue;
		}
		if (op == 0x01) {                            /* set_loc */
			if (!encoded(&p, end, ci->fde_enc, &loc))
				return false;
			r->loc = loc;
		} else if (op >= 0x02 && op <= 0x04) {       /* advance_loc1, 2, 4 */
			size_t len = (size_t)1 << (op - 2);
			if ((size_t)(end - p) < len)
				return false;
			memcpy(&u, p, len);
			p += len;
			r->loc += u * ci->code_align;
		} else {
			int done = reg_insn(r, op, &p, end);
			if (!done)
				done = cfa_insn(r, op, &p, end);
			if (done <= 0)
				return false;
			continue;
		}
		if (r->loc > r->target)
			return true;
	}
	return true;
}

/* ------------------------------------------------------- finding FDEs */

/* The CIE at ci_at. false: a form this file does not read (signal frames:
 * augmentation S; 64-bit lengths; old "eh" augmentations). */
static bool read_cie(const uint8_t *at, struct cie *ci)
{
	uint32_t len, id;
	memcpy(&len, at, 4);
	memcpy(&id, at + 4, 4);
	if (len == 0 || len == 0xffffffffu || id != 0)
		return false;
	const uint8_t *p = at + 8, *end = at + 4 + len;
	uint8_t version = *p++;
	const char *aug = (const char *)p;
	size_t alen = strnlen(aug, (size_t)(end - p));
	p += alen + 1;
	if ((version != 1 && version != 3) || p > end || (aug[0] && aug[0] != 'z'))
		return false;
	ci->code_align = uleb(&p, end);
	ci->data_align = sleb(&p, end);
	ci->ra_reg = version == 1 ? *p++ : uleb(&p, end);
	ci->fde_enc = 0;
	ci->aug_z = aug[0] == 'z';
	if (ci->aug_z) {
		uint64_t n = uleb(&p, end);
		const uint8_t *data_end = p + n;
		for (const char *a = aug + 1; *a && p < data_end; a++) {
			uintptr_t ignored;
			if (*a == 'R')
				ci->fde_enc = *p++;
			else if (*a == 'L')
				p++;
			else if (*a == 'P') {
				uint8_t enc = *p++;
				if (!encoded(&p, data_end, enc & 0x7f, &ignored))
					return false;
			} else
				return false;          /* S (a signal frame) or unknown */
		}
		p = data_end;
	}
	ci->insns = p;
	ci->end = end;
	return p <= end;
}

/* The FDE covering addr in obj, through the object's binary search table
 * (.eh_frame_hdr). NULL with *readable false when the table is not there or
 * not in the one form this file reads. */
static const uint8_t *find_fde(uintptr_t addr, const struct object *obj, bool *readable)
{
	*readable = false;
	if (!obj->map || !obj->tables)
		return NULL;
	const uint8_t *hdr = obj->tables, *p = hdr + 4;
	uintptr_t ignored, count;
	if (hdr[0] != 1 || hdr[3] != 0x3b ||           /* table: datarel sdata4 */
	    !encoded(&p, p + 16, hdr[1], &ignored) || !encoded(&p, p + 16, hdr[2], &count))
		return NULL;
	*readable = true;
	const int32_t *tab = (const int32_t *)(const void *)p;   /* (start, fde) - hdr */
	uintptr_t lo = 0, hi = count;
	while (lo < hi) {                               /* the last start <= addr */
		uintptr_t mid = lo + (hi - lo) / 2;
		if ((uintptr_t)(hdr + tab[2 * mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? hdr + tab[2 * (lo - 1) + 1] : NULL;
}

/* ------------------------------------------------------------- rules */

static struct rule rule_from(const struct cols *c)
{
	struct rule r = { .kind = RULE_UNREAD };
	if (c->ra_how == UNDEF) {
		r.kind = RULE_LAST;
		return r;
	}
	if (c->cfa_bad || (c->cfa_reg != DW_RSP && c->cfa_reg != DW_RBP) || c->ra_how != OFFSET ||
	    c->cfa_off < INT32_MIN || c->cfa_off > INT32_MAX || c->ra_off < -4096 || c->ra_off > 4096)
		return r;
	r.kind = RULE_OK;
	r.cfa_reg = c->cfa_reg;
	r.cfa_off = (int32_t)c->cfa_off;
	r.ra_off = (int16_t)c->ra_off;
	r.rbp_off = c->rbp_how == SAME ? RBP_SAME :
		    c->rbp_how == OFFSET && c->rbp_off >= -4096 && c->rbp_off <= 4096 ?
		    (int16_t)c->rbp_off : RBP_LOST;
	return r;
}

/* The rule at addr in obj, from its tables. */
static struct rule decode(uintptr_t addr, const struct object *obj)
{
	struct rule none = { .kind = RULE_UNREAD };
	bool readable;
	const uint8_t *fde = find_fde(addr, obj, &readable);
	if (!fde) {         /* no object: libgcc also searches frames registered by JITs */
		none.kind = readable ? RULE_NOFDE : RULE_UNREAD;
		return none;
	}
	uint32_t len;
	int32_t cie_off;
	memcpy(&len, fde, 4);
	memcpy(&cie_off, fde + 4, 4);
	struct cie ci;
	if (len == 0 || len == 0xffffffffu || !read_cie(fde + 4 - cie_off, &ci))
		return none;
	const uint8_t *p = fde + 8, *end = fde + 4 + len;
	uintptr_t start, range;
	if (!encoded(&p, end, ci.fde_enc, &start) || !encoded(&p, end, ci.fde_enc & 0x0f, &range))
		return none;
	if (addr < start || addr - start >= range) {
		none.kind = RULE_NOFDE;
		return none;
	}
	if (ci.aug_z)
		p += uleb(&p, end);
	struct run r = { .cie = &ci, .loc = start, .target = addr };
	r.c = (struct cols){ .cfa_reg = DW_RSP, .ra_how = SAME, .rbp_how = SAME };
	if (!run_insns(&r, ci.insns, ci.end) || r.loc > addr)
		return none;
	r.init = r.c;
	r.nsaved = 0;
	if (!run_insns(&r, p, end))
		return none;
	stackwalk_stats.decoded++;
	return rule_from(&r.c);
}

static uint32_t rule_slot(uintptr_t addr)
{
	return (uint32_t)((addr * 0x9E3779B97F4A7C15ULL) >> 40) & (RULES_CAP - 1);
}

static bool same_object(const struct object *a, const struct object *b)
{
	return a->map == b->map && a->start == b->start && a->end == b->end &&
	       a->tables == b->tables;
}

/* The rule at addr, which obj covers: cached, or decoded again when the
 * cached one came from another object. */
static const struct rule *rule_at(uintptr_t addr, const struct object *obj)
{
	static const struct rule unread = { .kind = RULE_UNREAD };
	if (!addr)
		return &unread;
	uint32_t i = rule_slot(addr);
	for (; rules[i].addr; i = (i + 1) & (RULES_CAP - 1))
		if (rules[i].addr == addr)
			break;
	if (rules[i].addr && same_object(&rules[i].obj, obj)) {
		stackwalk_stats.cached++;
		return &rules[i];
	}
	if (rules[i].addr) {
		stackwalk_stats.replaced++;       /* other code is at addr now */
	} else if (nrules >= RULES_CAP / 2) { /* half full: start again */
		memset(rules, 0, RULES_CAP * sizeof *rules);
		nrules = 0;
		i = rule_slot(addr);
		nrules++;
	} else {
		nrules++;
	}
	rules[i] = decode(addr, obj);
	rules[i].addr = addr;
	rules[i].obj = *obj;
	return &rules[i];
}

void stackwalk_test_forge(void)
{
	for (uint32_t i = 0; rules && i < RULES_CAP; i++)
		rules[i].obj.start ^= PAGE_SIZE;
}

/* The object covering addr (map NULL when none does). */
static void object_of(uintptr_t addr, struct object *obj)
{
	struct dl_find_object fo;
	if (_dl_find_object((void *)addr, &fo) == 0)
		*obj = (struct object){ fo.dlfo_link_map, fo.dlfo_eh_frame,
					(uintptr_t)fo.dlfo_map_start, (uintptr_t)fo.dlfo_map_end };
	else
		*obj = (struct object){ NULL, NULL, addr, addr + 1 };
}

/* ------------------------------------------------------------- walks */

unsigned stackwalk(uintptr_t skip_sp, uintptr_t *pcs, unsigned max, bool *complete)
{
	uintptr_t pc, sp, rbp;
	/* this frame, as it is at the instruction after the lea */
	__asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
			 : "=&r"(pc), "=&r"(sp), "=&r"(rbp));
	*complete = false;
	stackwalk_stats.walks++;
	if (!rules && !rules_failed) {
		rules = os_map(align_up(RULES_CAP * sizeof *rules, PAGE_SIZE), PAGE_SIZE);
		rules_failed = !rules;
	}
	if (!rules)
		return 0;
	unsigned n = 0;
	bool rbp_known = true;
	struct object obj = { NULL, NULL, 0, 0 };   /* the object of the last frame */
	for (uintptr_t lookup = pc;; lookup = pc - 1) {   /* return addresses: the call */
		if (sp >= skip_sp) {
			pcs[n++] = pc;
			if (n == max)
				break;
		}
		if (lookup - obj.start >= obj.end - obj.start) {   /* another object */
			object_of(lookup, &obj);
			stackwalk_stats.objects++;
		}
		const struct rule *r = rule_at(lookup, &obj);
		if (r->kind == RULE_LAST || r->kind == RULE_NOFDE)
			break;
		if (r->kind != RULE_OK || (r->cfa_reg == DW_RBP && !rbp_known))
			return n;
		uintptr_t cfa = (r->cfa_reg == DW_RSP ? sp : rbp) + (uintptr_t)(intptr_t)r->cfa_off;
		if (cfa <= sp || (cfa & 7))
			return n;
		pc = *(const uintptr_t *)(cfa + (uintptr_t)(intptr_t)r->ra_off);
		if (r->rbp_off == RBP_LOST)
			rbp_known = false;
		else if (r->rbp_off != RBP_SAME)
			rbp = *(const uintptr_t *)(cfa + (uintptr_t)(intptr_t)r->rbp_off);
		sp = cfa;
		if (!pc)
			break;
	}
	*complete = true;
	stackwalk_stats.complete++;
	return n;
}
