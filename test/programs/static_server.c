/*
 * static_server.c - a small TCP server and its clients, linked with libbuddyslab.a
 * (not preloaded), for static_server.sh. Built with -DWITH_BUDDYSLAB=0 it is the same
 * program on glibc's malloc.
 *
 *   static_server server PORT_FILE     listen on 127.0.0.1 (a free port, written to
 *                                      PORT_FILE), a thread per connection, until QUIT
 *   static_server client PORT THREADS CONNS REQS
 *                                      THREADS threads, each opening CONNS connections
 *                                      one after another, REQS requests on each
 *   static_server quit PORT            send QUIT
 *
 * Protocol: a request is a header {op, nbytes, seed} (little-endian u32, u32, u64),
 * then for ECHO nbytes of payload. The answer is the header again, then nbytes:
 *   GEN   bytes of the xorshift64 stream of seed, made by the server in a malloc'd buffer
 *   ECHO  the payload reversed; the server reads it into a buffer grown by realloc
 *   QUIT  no answer; the server stops accepting, joins every connection thread,
 *         frees what it keeps and prints its report
 * Memory the server keeps between requests: each connection keeps copies of its last
 * 16 answers (freed when it closes), and one table of 256 slots shared by all
 * connections keeps a copy of every GEN answer, replacing (and freeing) the copy that
 * another connection's thread may have made. So blocks of 1 B .. 256 KiB are freed by
 * other threads than the ones that allocated them, and threads come and go.
 * The client checks every byte of every answer. Exit status: 0 when no answer differed
 * (client) / every connection ended cleanly (server); "alloc: buddyslab" or
 * "alloc: glibc" in the server's report says whose malloc served it (bsl_owns).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifndef WITH_BUDDYSLAB
#define WITH_BUDDYSLAB 1
#endif
#if WITH_BUDDYSLAB
#include "buddyslab.h"
#endif

enum { OP_GEN = 1, OP_ECHO = 2, OP_QUIT = 3, KEEP = 16, SLOTS = 256, MAX_NBYTES = 256 << 10 };
struct hdr { uint32_t op, nbytes; uint64_t seed; };

static void die(const char *what) { perror(what); exit(2); }

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull | 1;
	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
		p[i] = (unsigned char)(x >> (8 * (i % 8)));
	}
}

static int io_all(int fd, void *buf, size_t n, int writing)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t k = writing ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) return -1;
		p += k; n -= (size_t)k;
	}
	return 0;
}

/* ---------------------------------------------------------------- server */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *slots[SLOTS];
static pthread_t *conns; static size_t nconns, capconns;
static unsigned long requests, bad_conns;
static int listener, quitting;

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, ok = 0;
	void *kept[KEEP] = { 0 };
	unsigned long n = 0;
	for (;;) {
		struct hdr h;
		if (io_all(fd, &h, sizeof h, 0)) { ok = 1; break; }   /* the client closed */
		if (h.op == OP_QUIT) {
			pthread_mutex_lock(&lock); quitting = 1; pthread_mutex_unlock(&lock);
			shutdown(listener, SHUT_RDWR); ok = 1; break;
		}
		if (h.nbytes == 0 || h.nbytes > MAX_NBYTES || (h.op != OP_GEN && h.op != OP_ECHO)) break;
		unsigned char *out;
		if (h.op == OP_GEN) {
			out = malloc(h.nbytes);
			if (!out) break;
			fill(out, h.nbytes, h.seed);
		} else {   /* read in pieces into a buffer that realloc grows */
			size_t cap = 64, have = 0;
			unsigned char *in = malloc(cap);
			while (in && have < h.nbytes) {
				size_t want = h.nbytes - have < 4096 ? h.nbytes - have : 4096;
				size_t grown = cap;
				while (have + want > grown) grown *= 2;
				if (grown != cap) {
					unsigned char *g = realloc(in, grown);
					if (!g) { free(in); in = NULL; break; }
					in = g; cap = grown;
				}
				if (io_all(fd, in + have, want, 0)) { free(in); in = NULL; break; }
				have += want;
			}
			if (!in) break;
			out = malloc(h.nbytes);
			if (!out) { free(in); break; }
			for (size_t i = 0; i < h.nbytes; i++) out[i] = in[h.nbytes - 1 - i];
			free(in);
		}
		int sent = io_all(fd, &h, sizeof h, 1) == 0 && io_all(fd, out, h.nbytes, 1) == 0;
		void *copy = malloc(h.nbytes);
		if (copy) memcpy(copy, out, h.nbytes);
		free(kept[n % KEEP]); kept[n % KEEP] = copy;
		if (h.op == OP_GEN) {   /* the shared table: replace another thread's copy */
			void *c2 = malloc(h.nbytes), *old;
			if (c2) memcpy(c2, out, h.nbytes);
			pthread_mutex_lock(&lock);
			old = slots[h.seed % SLOTS]; slots[h.seed % SLOTS] = c2;
			pthread_mutex_unlock(&lock);
			free(old);
		}
		free(out);
		n++;
		if (!sent) break;
	}
	for (int i = 0; i < KEEP; i++) free(kept[i]);
	close(fd);
	pthread_mutex_lock(&lock);
	requests += n;
	if (!ok) bad_conns++;
	pthread_mutex_unlock(&lock);
	return NULL;
}

static int server(const char *port_file)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (void *)&a, sizeof a) || listen(listener, 128) ||
	    getsockname(listener, (void *)&a, &alen))
		die("listen");
	FILE *f = fopen(port_file, "w");
	if (!f) die(port_file);
	fprintf(f, "%d\n", ntohs(a.sin_port));
	fclose(f);
	for (;;) {
		int fd = accept(listener, NULL, NULL);
		pthread_mutex_lock(&lock);
		int q = quitting;
		pthread_mutex_unlock(&lock);
		if (fd < 0) { if (q) break; if (errno == EINTR || errno == ECONNABORTED) continue; die("accept"); }
		if (nconns == capconns) {   /* the accept thread alone touches conns */
			capconns = capconns ? capconns * 2 : 64;
			conns = realloc(conns, capconns * sizeof *conns);
			if (!conns) die("realloc");
		}
		if (pthread_create(&conns[nconns], NULL, serve, (void *)(intptr_t)fd)) die("pthread_create");
		nconns++;
	}
	for (size_t i = 0; i < nconns; i++) pthread_join(conns[i], NULL);
	size_t kept = 0;
	for (int i = 0; i < SLOTS; i++) { kept += slots[i] != NULL; free(slots[i]); }
	void *probe = malloc(100);
	int ours = 0;
#if WITH_BUDDYSLAB
	ours = bsl_owns(probe) == 1;
#endif
	free(probe);
	free(conns);
	printf("server: %zu connections, %lu requests, %zu shared copies freed, %lu bad connections, alloc: %s\n",
	       nconns, requests, kept, bad_conns, ours ? "buddyslab" : "glibc");
	return bad_conns ? 1 : 0;
}

/* ---------------------------------------------------------------- client */
static int port, nconn_per_thread, nreq;
static unsigned long c_requests, c_bytes, c_mismatches;

static int dial(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0 || connect(fd, (void *)&a, sizeof a)) die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static void *client_thread(void *arg)
{
	uint64_t x = 0x1234567ull + (uintptr_t)arg * 0x10001ull;
	unsigned long reqs = 0, bytes = 0, bad = 0;
	for (int c = 0; c < nconn_per_thread; c++) {
		int fd = dial();
		for (int r = 0; r < nreq; r++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			/* sizes spread over 1 B .. 256 KiB, log-uniform */
			uint32_t nbytes = 1 + (uint32_t)((x >> 8) % (1u << (x % 19)));
			struct hdr h = { (x >> 40) % 2 ? OP_GEN : OP_ECHO, nbytes, x }, back;
			unsigned char *want = malloc(nbytes), *got = malloc(nbytes), *payload = NULL;
			if (!want || !got) die("malloc");
			if (h.op == OP_GEN) {
				fill(want, nbytes, h.seed);
			} else {
				payload = malloc(nbytes);
				if (!payload) die("malloc");
				fill(payload, nbytes, h.seed ^ 0xabcdef);
				for (uint32_t i = 0; i < nbytes; i++) want[i] = payload[nbytes - 1 - i];
			}
			if (io_all(fd, &h, sizeof h, 1) || (payload && io_all(fd, payload, nbytes, 1)) ||
			    io_all(fd, &back, sizeof back, 0) || io_all(fd, got, nbytes, 0)) {
				fprintf(stderr, "client: connection lost (request %d of connection %d)\n", r, c);
				bad++; free(want); free(got); free(payload); break;
			}
			if (memcmp(&back, &h, sizeof h) || memcmp(want, got, nbytes)) {
				size_t i = 0;
				while (i < nbytes && want[i] == got[i]) i++;
				fprintf(stderr, "client: answer to op %u of %u bytes differs at byte %zu\n", h.op, nbytes, i);
				bad++;
			}
			reqs++; bytes += nbytes;
			free(want); free(got); free(payload);
		}
		close(fd);
	}
	pthread_mutex_lock(&lock);
	c_requests += reqs; c_bytes += bytes; c_mismatches += bad;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server")) return server(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "quit")) {
		port = atoi(argv[2]);
		int fd = dial();
		struct hdr h = { OP_QUIT, 0, 0 };
		return io_all(fd, &h, sizeof h, 1) ? 1 : 0;
	}
	if (argc == 6 && !strcmp(argv[1], "client")) {
		port = atoi(argv[2]);
		int nthreads = atoi(argv[3]);
		nconn_per_thread = atoi(argv[4]); nreq = atoi(argv[5]);
		pthread_t *t = calloc((size_t)nthreads, sizeof *t);
		if (!t) die("calloc");
		for (int i = 0; i < nthreads; i++)
			if (pthread_create(&t[i], NULL, client_thread, (void *)(intptr_t)i)) die("pthread_create");
		for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
		free(t);
		printf("client: %d threads, %lu requests, %lu bytes checked, %lu mismatches\n",
		       nthreads, c_requests, c_bytes, c_mismatches);
		return c_mismatches || c_requests != (unsigned long)nthreads * nconn_per_thread * nreq;
	}
	fprintf(stderr, "usage: %s server PORT_FILE | client PORT THREADS CONNS REQS | quit PORT\n", argv[0]);
	return 2;
}
