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
	for (int step = 0; step < 20000; step++) {
		int i = (int)(next_rand() % N);
		if (held[i].d) {
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
	T_RUN(t_exhaustion_and_growth);
	T_RUN(t_dirty_accounting_and_purge);
	T_RUN(t_random_ops_keep_invariants);
	T_RUN(t_pointer_to_descriptor);
	return t_done();
}
