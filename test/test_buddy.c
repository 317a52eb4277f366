/*
 * test_buddy.c - the buddy layer on its own, driven through a fake chunk
 * source (the test decides when a zone may grow and counts it). Replays the
 * seeds' examples and walks every free list with the invariant checker.
 */
#include "t.h"
#include "buddy.h"
#include "arena.h"

static struct zone *Z;
static int chunks_given, chunk_budget;

static struct page_desc *fake_chunk_source(uint16_t zone_id)
{
	if (chunks_given >= chunk_budget)
		return NULL;
	chunks_given++;
	return arena_chunk_alloc(zone_id);
}

/* A fresh zone (the last one, which no CPU of this machine uses) allowed to
 * take `budget` chunks. */
static void fresh_zone(int budget)
{
	static int next = MAX_CPUS - 1;
	Z = &zones[next--];
	Z->chunk_source = fake_chunk_source;
	chunks_given = 0;
	chunk_budget = budget;
}

static void t_seed_split_70_pages(void)
{
	fresh_zone(1);
	bool dirty;
	struct page_desc *d = buddy_alloc(Z, ceil_log2(70), &dirty);
	REQUIRE(d);
	CHECK(chunks_given == 1);
	CHECK(!dirty);                          /* fresh chunk: clean */
	/* 1024 -> 512 -> 256 -> 128: one free block left at each of 9, 8, 7 */
	CHECK(Z->nfree[10] == 0 && Z->nfree[9] == 1 && Z->nfree[8] == 1 && Z->nfree[7] == 1);
	for (unsigned o = 0; o < 7; o++)
		CHECK(Z->nfree[o] == 0);
	CHECK(Z->free_pages == 1024 - 128);
	CHECK(desc_index(d) % 1024 == 0);       /* the chunk's first 128 pages */
	buddy_check(Z);
	buddy_free(d, 7);
	CHECK(Z->nfree[10] == 1 && Z->nfree[9] == 0 && Z->nfree[8] == 0 && Z->nfree[7] == 0);
	CHECK(Z->free_pages == 1024);
	buddy_check(Z);
}

static void t_seed_neighbours_not_buddies(void)
{
	fresh_zone(1);
	bool dirty;
	struct page_desc *pg[4];
	for (int i = 0; i < 4; i++)
		REQUIRE(pg[i] = buddy_alloc(Z, 0, &dirty));
	size_t base = desc_index(pg[0]);
	for (int i = 0; i < 4; i++)
		CHECK(desc_index(pg[i]) == base + (size_t)i);
	buddy_free(pg[1], 0);
	buddy_free(pg[2], 0);
	buddy_drain_pcp(Z);
	/* pages 1 and 2 touch but are not buddies (1 ^ 1 = 0, 2 ^ 1 = 3) */
	CHECK(Z->nfree[0] == 2 && Z->nfree[1] == 0);
	buddy_check(Z);
	buddy_free(pg[0], 0);
	buddy_drain_pcp(Z);
	CHECK(Z->nfree[0] == 1 && Z->nfree[1] == 1);   /* 0+1 merged, 2 alone */
	buddy_free(pg[3], 0);
	buddy_drain_pcp(Z);
	CHECK(Z->nfree[10] == 1 && Z->free_pages == 1024);
	for (unsigned o = 0; o < 10; o++)
		CHECK(Z->nfree[o] == 0);
	buddy_check(Z);
}

static void t_run_gives_back_tail(void)
{
	fresh_zone(1);
	bool dirty;
	struct page_desc *d = buddy_alloc_pages(Z, 3, 1, &dirty);   /* take 4, return 1 */
	REQUIRE(d);
	CHECK(Z->free_pages == 1024 - 3);
	CHECK(Z->nfree[0] == 1);
	buddy_check(Z);
	buddy_free_pages(d, 3);
	buddy_drain_pcp(Z);
	CHECK(Z->nfree[10] == 1 && Z->free_pages == 1024);
	/* aligned run: 5 pages on a 16-page boundary */
	d = buddy_alloc_pages(Z, 5, 16, &dirty);
	REQUIRE(d);
	CHECK(desc_index(d) % 16 == 0);
	CHECK(Z->free_pages == 1024 - 5);
	buddy_free_pages(d, 5);
	buddy_drain_pcp(Z);
	CHECK(Z->nfree[10] == 1);
	buddy_check(Z);
}

/* A range in use grows over the free blocks and pcp pages right after it,
 * splitting the last one, and not over a page in use or past its chunk. */
static void t_grow_in_place(void)
{
	fresh_zone(1);
	bool dirty;
	struct page_desc *d = buddy_alloc_pages(Z, 5, 1, &dirty);   /* [0,8): 5, 6-7 free */
	REQUIRE(d);
	size_t base = desc_index(d);
	REQUIRE(base % 1024 == 0);
	CHECK(Z->nfree[0] == 1 && Z->nfree[1] == 1);
	CHECK(buddy_grow_pages(d, 5, 7));           /* page 5, and 6 of 6-7: 7 goes back */
	CHECK(Z->free_pages == 1024 - 7 && Z->nfree[0] == 1 && Z->nfree[1] == 0);
	CHECK(d[6].kind == PD_NONE && d[7].kind == PD_FREE && d[7].order == 0);
	buddy_check(Z);
	CHECK(buddy_grow_pages(d, 7, 20));          /* 7, 8-15, and 16-19 of 16-31 */
	CHECK(Z->free_pages == 1024 - 20 && Z->nfree[0] == 0 && Z->nfree[3] == 1);
	CHECK(d[20].kind == PD_FREE && d[20].order == 2 && d[24].kind == PD_FREE && d[24].order == 3);
	buddy_check(Z);
	struct page_desc *e = buddy_alloc_pages(Z, 4, 1, &dirty);   /* the one 4-page block */
	REQUIRE(e);
	CHECK(desc_index(e) == base + 20);
	size_t free_before = Z->free_pages;
	CHECK(!buddy_grow_pages(d, 20, 21));        /* its neighbour is in use */
	CHECK(!buddy_grow_pages(d, 20, 40));
	CHECK(Z->free_pages == free_before && d[24].kind == PD_FREE);
	buddy_check(Z);
	buddy_free_pages(e, 4);                     /* [20,24) free again */
	struct page_desc *pg = buddy_alloc(Z, 0, &dirty);   /* page 20 of it ... */
	REQUIRE(pg == d + 20);
	buddy_free(pg, 0);                          /* ... into the pcp */
	CHECK(pg->kind == PD_PCP);
	unsigned pcp = Z->pcp_count;
	CHECK(buddy_grow_pages(d, 20, 26));         /* pcp page 20, 21, 22-23, 24-25 of 24-31 */
	CHECK(Z->pcp_count == pcp - 1 && pg->kind == PD_NONE);
	CHECK(Z->free_pages == 1024 - 26);
	buddy_check(Z);
	CHECK(!buddy_grow_pages(d, 26, 1025));      /* past the chunk */
	CHECK(buddy_grow_pages(d, 26, 1024));       /* the rest of it */
	CHECK(Z->free_pages == 0);
	buddy_check(Z);
	buddy_free_pages(d, 1024);
	CHECK(Z->nfree[10] == 1 && Z->free_pages == 1024);
	buddy_check(Z);
}

static void t_exhaustion_and_growth(void)
{
	fresh_zone(2);
	bool dirty;
	struct page_desc *a = buddy_alloc(Z, 10, &dirty);
	struct page_desc *b = buddy_alloc(Z, 10, &dirty);
	REQUIRE(a && b);
	CHECK(chunks_given == 2);
	/* no budget left: this zone cannot grow; buddy_alloc falls back to other
	 * zones, which own nothing in this test process yet at order 10 */
	struct page_desc *c = buddy_alloc(Z, 10, &dirty);
	if (c)
		CHECK(c->zone != Z->id);
	buddy_free(a, 10);
	buddy_free(b, 10);
	CHECK(Z->nfree[10] == 2);
	if (c)
		buddy_free(c, 10);
	buddy_check(Z);
}

static void t_dirty_accounting_and_purge(void)
{
	fresh_zone(1);
	bool dirty;
	struct page_desc *d = buddy_alloc(Z, 4, &dirty);
	REQUIRE(d);
	CHECK(!dirty && Z->dirty_pages == 0);
	char *p = desc_addr(d);
	p[0] = 1;
	buddy_free(d, 4);
	CHECK(Z->dirty_pages == 1024);          /* merged into the chunk: dirty */
	buddy_check(Z);
	size_t nbytes = buddy_purge_all();
	CHECK(nbytes >= 1024 * PAGE_SIZE);
	CHECK(Z->dirty_pages == 0);
	d = buddy_alloc(Z, 4, &dirty);
	REQUIRE(d);
	CHECK(!dirty);
	CHECK(((char *)desc_addr(d))[0] == 0);  /* returned pages read as zero */
	buddy_free(d, 4);
	buddy_check(Z);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return rng;
}

static void t_random_ops_keep_invariants(void)
{
	fresh_zone(4);
	enum { N = 400 };
	struct { struct page_desc *d; size_t npages; } held[N] = { { 0 } };
	bool dirty;
	int grown = 0;
	for (int step = 0; step < 20000; step++) {
		int i = (int)(next_rand() % N);
		if (held[i].d && next_rand() % 4 == 0) {   /* grow where it is, if it can */
			size_t more = 1 + next_rand() % 20;
			if (held[i].npages + more <= 1024 &&
			    buddy_grow_pages(held[i].d, held[i].npages, held[i].npages + more)) {
				held[i].npages += more;
				grown++;
			}
		} else if (held[i].d) {
			buddy_free_pages(held[i].d, held[i].npages);
			held[i].d = NULL;
		} else {
			size_t npages = 1 + next_rand() % (next_rand() % 4 ? 8 : 300);
			size_t align = (size_t)1 << (next_rand() % 3);
			held[i].d = buddy_alloc_pages(Z, npages, align, &dirty);
			held[i].npages = npages;
			if (held[i].d)
				CHECK(desc_index(held[i].d) % align == 0);
		}
		if (step % 97 == 0)
			buddy_check(Z);
	}
	for (int i = 0; i < N; i++)
		if (held[i].d && held[i].d->zone == Z->id)
			buddy_free_pages(held[i].d, held[i].npages);
	buddy_drain_pcp(Z);
	buddy_check(Z);
	CHECK(grown > 0);
	CHECK(Z->nfree[10] == Z->chunks);       /* everything merged back */
	CHECK(Z->free_pages == Z->chunks * 1024);
}

static void t_pointer_to_descriptor(void)
{
	fresh_zone(1);
	bool dirty;
	struct page_desc *d = buddy_alloc(Z, 2, &dirty);
	REQUIRE(d);
	char *p = desc_addr(d);
	for (size_t off = 0; off < 4 * PAGE_SIZE; off += 1000)
		CHECK(arena_desc_of(p + off) == d + off / PAGE_SIZE);
	int local;
	CHECK(arena_desc_of(&local) == NULL);
	CHECK(arena_desc_of((void *)16) == NULL);
	buddy_free(d, 2);
}

int main(void)
{
	T_RUN(t_seed_split_70_pages);
	T_RUN(t_seed_neighbours_not_buddies);
	T_RUN(t_run_gives_back_tail);
	T_RUN(t_grow_in_place);
	T_RUN(t_exhaustion_and_growth);
	T_RUN(t_dirty_accounting_and_purge);
	T_RUN(t_random_ops_keep_invariants);
	T_RUN(t_pointer_to_descriptor);
	return t_done();
}
