#!/usr/bin/env python3
"""make-seeds.py - write the seed corpus of the libFuzzer harness (test/fuzz/corpus/).

Each seed is an op sequence in the format documented at the top of
fuzz_malloc.c; together they call every op and variant, hit every tier (slab
sizes 0..16 KiB and every class boundary, page runs up to 128 KiB, mmap'd
blocks above it up to 8 MiB), the tier edges, alignments 1 B .. 8 MiB, and the
failing requests. The encoders check every size and alignment by decoding it
again as the harness does (decode_size, decode_align mirror draw_size and
draw_align), so a change of the format that is not made here too fails loudly.

usage: test/fuzz/make-seeds.py [OUTDIR]   (default: the corpus/ beside this file)
The output is deterministic; rerunning rewrites the same files.
"""
import os
import random
import struct
import sys

(MALLOC, CALLOC, REALLOC, MEMALIGN, ALIGNED, POSIX, VALLOC, FREE, USABLE, REALLOC_BY,
 REALLOCARRAY, BURST, BURST_FREE, FREE2, FAIL, MISC) = range(16)
PAGE, SLAB_MAX, THRESHOLD, CHUNK, MAX_SIZE = 4096, 16384, 128 << 10, 4 << 20, 8 << 20
KIB, MIB = 1 << 10, 1 << 20


def class_size(c):
    if c <= 8:
        return 16 * c
    k, step = 7 + (c - 9) // 4, (c - 9) % 4 + 1
    return (1 << k) + step * (1 << (k - 2))


CLASSES = [class_size(c) for c in range(1, 37)]
EDGE = [-4097, -4096, -4095, -1, 0, 1, 4095, 4096, 4097]


def u32le(b, i):
    v = 0
    for k in range(4):
        v |= (b[i + k] if i + k < len(b) else 0) << (8 * k)
    return v


def decode_size(b):
    """(size, bytes used) as draw_size in fuzz_malloc.c reads them."""
    m = b[0]
    mode, hi = m & 15, m >> 4
    d3 = hi % 3 - 1
    a8 = b[1] if len(b) > 1 else 0
    a16 = a8 | ((b[2] if len(b) > 2 else 0) << 8)
    a32 = u32le(b, 1)
    table = {
        0: (a8, 2), 1: (a16 % 1025, 3), 2: (class_size(1 + a8 % 36) + d3, 2),
        3: (a16 % (SLAB_MAX + 1), 3), 4: (SLAB_MAX + d3, 1),
        5: ((1 + a8 % 32) * PAGE + d3, 2),
        6: (SLAB_MAX + 1 + a32 % (THRESHOLD - SLAB_MAX), 5),
        7: (THRESHOLD + EDGE[hi % 9], 1),
        8: (THRESHOLD + 1 + a32 % (MIB - THRESHOLD), 5),
        9: ((33 + a16 % 480) * PAGE + d3, 3),
        10: (CHUNK + EDGE[hi % 9], 1), 11: (CHUNK // 2 + EDGE[hi % 9], 1), 12: (0, 1),
        13: ((a8 * 16 + d3 if a8 else int(d3 > 0)), 2),
        14: (a16 * 16, 3),
        15: (a32 & ((MAX_SIZE >> (15 - hi)) - 1), 5),
    }
    return table[mode]


def size(n):
    """Bytes that make draw_size return n (0 .. 8 MiB - 1)."""
    if n <= 255:
        b = bytes([0, n])
    elif n <= 1024:
        b = bytes([1]) + struct.pack('<H', n)
    elif n <= SLAB_MAX:
        b = bytes([3]) + struct.pack('<H', n)
    elif n <= THRESHOLD:
        b = bytes([6]) + struct.pack('<I', n - SLAB_MAX - 1)
    elif n < MIB:
        b = bytes([8]) + struct.pack('<I', n - THRESHOLD - 1)
    else:
        b = bytes([0xFF]) + struct.pack('<I', n)
    assert decode_size(b) == (n, len(b)), (n, b, decode_size(b))
    return b


def size_mode(mode, hi=0, arg=b''):
    """A size by mode (the boundary modes), checked to decode in full."""
    b = bytes([mode | hi << 4]) + arg
    n, used = decode_size(b)
    assert used == len(b), (mode, hi, arg)
    return b


def class_edge(c, delta):      # class c (1..36) + delta (-1, 0, 1)
    return size_mode(2, delta + 1, bytes([c - 1]))


def page_edge(k, delta):       # k pages (1..32) + delta
    return size_mode(5, delta + 1, bytes([k - 1]))


def decode_align(a):
    if a == 0xFF:
        return 0
    if a >= 0xE0:
        return 3 << (a % 12)
    if a >= 0xC0:
        return 1 << (12 + a % 12)
    return 1 << (a % 16)


def align(x):
    for a in range(256):
        if decode_align(a) == x:
            return bytes([a])
    raise ValueError(x)


def op(code, variant=0):
    return bytes([code | (variant & 15) << 4])


def malloc(slot, n, v=0):
    return op(MALLOC, v) + bytes([slot]) + size(n)


def calloc(slot, n, nmemb_byte=0, v=0):
    return op(CALLOC, v) + bytes([slot]) + size(n) + bytes([nmemb_byte])


def realloc(slot, n, v=0):
    return op(REALLOC, v) + bytes([slot]) + size(n)


def aligned(code, slot, al, n, v=0):
    return op(code, v) + bytes([slot]) + align(al) + size(n)


def valloc(slot, n, v=0):
    return op(VALLOC, v) + bytes([slot]) + size(n)


def free(slot, v=0):
    return op(FREE, v) + bytes([slot])


def usable(slot):
    return op(USABLE) + bytes([slot])


def realloc_by(slot, delta, pages=False, libc=False):
    return op(REALLOC_BY, int(pages) | 2 * int(libc)) + bytes([slot, delta & 0xFF])


def reallocarray(slot, nmemb, n, overflow=False):
    return op(REALLOCARRAY, int(overflow)) + bytes([slot, nmemb - 1]) + size(n)


def burst(start_slot, count, n, api=0):
    assert start_slot % 4 == 0 and 1 <= count <= 1024
    return op(BURST, api) + bytes([start_slot // 4]) + struct.pack('<H', count - 1) + size(n)


def burst_free(start_slot, count, order=0):
    return op(BURST_FREE, order) + bytes([start_slot // 4]) + struct.pack('<H', count - 1)


def fail(sub, slot=0, sel=0):
    return op(FAIL, sub) + bytes([slot, sel])


def misc(sub, sel=0):
    return op(MISC, sub) + bytes([sel])


TRIM, MALLOPT, FREE_ALL, NULLS, STATS, MALLINFO, CHECK_ALL, FAULT = range(8)


def seeds():
    s = {}
    # every slab class, one below and one above it, then freed in another order
    b = b''
    for i, c in enumerate(range(1, 37)):
        for d in (-1, 0, 1):
            b += op(MALLOC) + bytes([(3 * i + d + 1) % 256]) + class_edge(c, d)
    b += misc(STATS)
    for i in range(0, 108, 2):
        b += free(i, i)
    s['slab-class-edges'] = b
    s['slab-small-0-1024'] = b''.join(malloc(i, i * 8) for i in range(129)) + misc(STATS)
    s['slab-calloc'] = b''.join(calloc(i, n, i % 16, i % 4) for i, n in
                                enumerate([0, 1, 15, 16, 17, 100, 1000, 4096, 8191, 16384]))
    s['slab-max-edges'] = b''.join(op(MALLOC) + bytes([h]) + size_mode(4, h) for h in range(3)) + \
        misc(STATS)
    # page runs: every page count 1..32, +-1 byte
    b = b''
    for k in range(1, 33):
        for d in (-1, 0, 1):
            b += op(MALLOC) + bytes([(3 * k + d) % 256]) + page_edge(k, d)
    s['run-page-edges'] = b + misc(STATS)
    s['run-mixed'] = b''.join(malloc(i, n) for i, n in enumerate(
        [16385, 20000, 40960, 65535, 65536, 65537, 100000, 131071, 131072])) + \
        b''.join(free(i) for i in (8, 0, 4, 2, 6, 1, 3, 5, 7))
    s['threshold-edges'] = b''.join(op(MALLOC) + bytes([h]) + size_mode(7, h) for h in range(9)) \
        + misc(STATS)
    s['large-sizes'] = b''.join(malloc(i, n) for i, n in enumerate(
        [131073, 200000, 262144, MIB - 1, MIB, 2 * MIB + 1, 3 * MIB])) + misc(STATS) + \
        misc(FREE_ALL) + malloc(0, 6 * MIB) + malloc(1, MIB + 1) + misc(STATS)
    s['large-chunk-edges'] = b''.join(op(MALLOC) + bytes([h]) + size_mode(10, h) + free(h) +
                                      op(MALLOC) + bytes([h]) + size_mode(11, h) + free(h)
                                      for h in (0, 3, 4, 5, 8))
    # alignments 1 B .. 8 MiB in every tier, three APIs
    b = b''
    for k in range(24):
        for j, n in enumerate((0, 24, 5000, 40000, 300000)):
            if k == 23 and n == 0:
                n = 1           # known bug: see test/fuzz/crashes/
            b += aligned((MEMALIGN, ALIGNED, POSIX)[(k + j) % 3], (5 * k + j) % 256, 1 << k, n)
        if k % 8 == 7:
            b += misc(STATS) + misc(FREE_ALL)
    s['align-all-tiers'] = b
    s['align-page-slab'] = b''.join(aligned(ALIGNED, i, a, n) for i, (a, n) in enumerate(
        [(4096, 4097), (4096, 5121), (4096, 12289), (2048, 4097), (1024, 1), (64, 16384),
         (4096, 16384), (8192, 16384), (4 * MIB, 4096), (2 * MIB, 131072)]))
    s['align-bad'] = (aligned(ALIGNED, 0, 0, 10) + aligned(ALIGNED, 1, 3, 10) +
                      aligned(ALIGNED, 2, 24, 100) + aligned(POSIX, 3, 4, 10) +
                      aligned(POSIX, 4, 0, 10) + aligned(POSIX, 5, 12, 10) +
                      aligned(MEMALIGN, 6, 0, 10) + aligned(MEMALIGN, 7, 3, 10) +
                      aligned(MEMALIGN, 8, 3 << 11, 100000) + aligned(POSIX, 9, 8, 10, 1) +
                      aligned(MEMALIGN, 10, 1 << 20, 10, 1))
    s['valloc-pvalloc'] = b''.join(valloc(i, n, i % 4) for i, n in enumerate(
        [0, 1, 4095, 4096, 4097, 16384, 20000, 131072, 200000, 0, 1]))
    # realloc through every tier, up and down
    chain = [1, 16, 17, 100, 1024, 4000, 16384, 16385, 40000, 131072, 131073, 500000,
             2 * MIB, 5 * MIB, 300000, 131072, 20000, 16384, 200, 8, 0]
    s['realloc-chain'] = b''.join(realloc(0, n, i % 2) for i, n in enumerate(chain))
    s['realloc-null-and-zero'] = (realloc(5, 100) + realloc(5, 0) + realloc(6, 0) +
                                  malloc(7, 50000) + realloc(7, 0, 1) + realloc(8, 300000) +
                                  realloc(8, 0))
    b = malloc(0, 100) + malloc(1, 30000) + malloc(2, 300000)
    for d in (1, -1, 15, -15, 60, -100, 127, -128):
        b += realloc_by(0, d)
    for d in (1, -1, 2, -3, 4, -5):
        b += realloc_by(1, d, True) + realloc_by(2, d, True)
    s['realloc-by'] = b
    s['reallocarray'] = (reallocarray(0, 1, 100) + reallocarray(0, 10, 5000) +
                         reallocarray(0, 200, 300000) + reallocarray(0, 3, 90) +
                         reallocarray(1, 7, 0) + reallocarray(0, 2, 10, True) +
                         reallocarray(9, 1, 10, True) + reallocarray(0, 1, 0))
    s['usable-slack'] = b''.join(malloc(i, n) + usable(i) for i, n in enumerate(
        [1, 17, 100, 1000, 5000, 16383, 16385, 70000, 131073, 1000000])) + \
        b''.join(realloc(i, n) for i, n in enumerate([2000, 10, 9000, 20000, 4, 1, 50000, 7, 5, 3]))
    s['free-variants'] = b''.join(malloc(i, 100 * (i + 1)) for i in range(10)) + \
        b''.join(free(i, i % 5) + op(FREE2, i) + bytes([i]) for i in range(10))
    # many objects of one class: slabs fill, thread-cache bins overflow and flush
    s['burst-slab-16'] = (burst(0, 1024, 16) + burst_free(0, 1024, 2) + burst(0, 700, 16) +
                          burst_free(0, 700, 3) + burst(512, 300, 16, 1) + misc(STATS))
    s['burst-slab-mixed'] = (burst(0, 300, 1000, 0) + burst(300, 200, 100, 1) +
                             burst(500, 100, 4000, 2) + burst(600, 40, 16384, 3) +
                             burst_free(0, 640, 1) + burst(0, 256, 2048) + misc(STATS))
    s['burst-runs'] = (burst(0, 100, 20000) + burst_free(0, 100, 2) + burst(0, 64, 65536, 3) +
                       burst_free(0, 64, 0) + burst(0, 30, 131072, 1) + misc(TRIM))
    s['burst-pages-chunks'] = (burst(0, 1024, 4096, 3) + burst_free(0, 1024, 2) +
                               burst(0, 1024, 4096) + misc(STATS) + misc(FREE_ALL) + misc(TRIM))
    s['burst-large'] = (burst(0, 12, 600000) + burst_free(0, 12, 1) + burst(0, 12, 600000, 1) +
                        misc(STATS))
    # reuse of freed memory: calloc must see zeroes
    b = b''
    for i, n in enumerate([64, 1000, 16384, 20000, 131072, 200000, 2 * MIB]):
        b += malloc(i, n) + free(i) + calloc(i, n) + free(i) + calloc(i, n, 3)
    s['calloc-reuse'] = b
    s['run-cache'] = b''.join(malloc(0, n) + free(0) for n in
                              [20480, 20480, 65536, 65536, 131072, 24576, 20480] * 3)
    s['large-cache'] = b''.join(malloc(0, n) + free(0) + calloc(1, n) + free(1) for n in
                                [200000, 300000, 1 * MIB, 600000, 3 * MIB])
    s['large-mremap'] = (malloc(0, 200000) + realloc(0, 400000) + realloc(0, 5 * MIB) +
                         realloc(0, 140000) + realloc_by(0, 10, True) + realloc_by(0, -3, True) +
                         realloc(0, 131072) + realloc(0, 300000))
    s['fail-all'] = b''.join(fail(v, v, sel) for v in range(8) for sel in (0, 1, 7, 8, 9, 255)) + \
        malloc(2, 100) + fail(2, 2, 3) + malloc(3, 300000) + fail(2, 3, 5)
    s['misc-all'] = (malloc(0, 100) + malloc(1, 50000) + misc(TRIM) + misc(NULLS) + misc(STATS) +
                     misc(MALLINFO) + misc(CHECK_ALL) + misc(7) + misc(FREE_ALL) + misc(TRIM))
    # a system call fails at the nth next call (sel: op | (n - 1) << 2 | persist << 6)
    for k, (sysop, name) in enumerate([(0, 'mmap'), (1, 'mprotect'), (2, 'madvise'), (3, 'mremap')]):
        b = b''
        for n in (1, 2, 3, 5):
            b += misc(FAULT, sysop | (n - 1) << 2)
            b += (malloc(0, 300000) + realloc(0, 600000) + realloc(0, 900000) + realloc(0, 140000) +
                  realloc(0, 700000) + burst(4, 100, 16384) +
                  burst_free(4, 100, 2) + misc(TRIM) + malloc(1, 1500000) + calloc(2, 200000) +
                  aligned(POSIX, 3, 1 << 20, 5000) + misc(STATS) + misc(FREE_ALL))
        b += misc(FAULT, sysop | 0x40) + malloc(0, 200000) + burst(4, 200, 8000) + misc(TRIM) + \
            realloc(5, 700000) + misc(STATS)
        s['fault-' + name] = b
    b = b''
    for sel in range(8):
        b += misc(MALLOPT, sel) + malloc(sel, 20000 + 25000 * sel) + realloc(sel, 70000) + \
            realloc(sel, 300000) + misc(STATS)
    s['mallopt-threshold'] = b + misc(MALLOPT, 2)
    s['size-zero'] = (malloc(0, 0) + calloc(1, 0) + calloc(2, 0, 0, 1) + aligned(MEMALIGN, 3, 64, 0) +
                      aligned(ALIGNED, 4, 4096, 0) + aligned(POSIX, 5, 1 << 20, 0) +
                      reallocarray(6, 5, 0) + valloc(7, 0) + valloc(8, 0, 1) + realloc(9, 0) +
                      op(MALLOC) + b'\x0a' + size_mode(12) + misc(STATS))
    s['libc-aliases'] = (malloc(0, 10, 1) + calloc(1, 100, 2, 2) + realloc(0, 2000, 1) +
                         aligned(MEMALIGN, 2, 256, 300, 1) + aligned(POSIX, 3, 512, 30, 1) +
                         valloc(4, 10, 2) + valloc(5, 10, 3) + realloc_by(0, 100, False, True) +
                         realloc_by(0, 5, True, True) + b''.join(free(i, 4) for i in range(6)))
    # fragmentation: slabs and runs of many sizes interleaved, half freed
    rng = random.Random(4)
    b = b''
    for i in range(200):
        n = rng.choice([rng.randrange(1, 512), rng.randrange(512, 16385),
                        rng.randrange(16385, THRESHOLD + 1)])
        b += malloc(i, n)
    b += b''.join(free(i) for i in range(0, 200, 2)) + misc(STATS)
    b += b''.join(malloc(i, rng.randrange(1, 70000)) for i in range(0, 200, 2))
    s['fragment'] = b
    s['boundaries-16'] = b''.join(op(MALLOC) + bytes([i]) + size_mode(13, h, bytes([i]))
                                  for i in range(64) for h in (0, 1, 2) if i or h)
    s['mid-sizes'] = b''.join(op(MALLOC) + bytes([i]) + size_mode(14, 0, struct.pack('<H', n))
                              for i, n in enumerate([1, 1024, 1025, 8192, 8193, 65535]))
    s['log-sizes'] = b''.join(op(MALLOC) + bytes([h]) + size_mode(15, h, struct.pack('<I', 0xFFFFFFFF))
                              + free(h) for h in range(16))
    # long random sequences of every op
    for k in range(4):
        rng = random.Random(100 + k)
        b = b''
        for _ in range(300):
            o = rng.randrange(16)
            slot = rng.randrange(64)
            n = rng.choice([rng.randrange(0, 300), rng.randrange(0, 1024), rng.randrange(0, 16385),
                            rng.randrange(16385, 131073), rng.randrange(131073, 1 << 19)])
            al = 1 << rng.choice([0, 3, 4, 6, 8, 12, 12, 13, 16, 21])
            if o in (MALLOC, CALLOC, REALLOC):
                b += op(o, rng.randrange(4)) + bytes([slot]) + size(n) + \
                    (bytes([rng.randrange(256)]) if o == CALLOC else b'')
            elif o in (MEMALIGN, ALIGNED, POSIX):
                b += aligned(o, slot, al, n, rng.randrange(2))
            elif o == VALLOC:
                b += valloc(slot, n, rng.randrange(4))
            elif o in (FREE, FREE2):
                b += free(slot, rng.randrange(16))
            elif o == USABLE:
                b += usable(slot)
            elif o == REALLOC_BY:
                b += realloc_by(slot, rng.randrange(-128, 128), rng.random() < 0.5,
                                rng.random() < 0.2)
            elif o == REALLOCARRAY:
                b += reallocarray(slot, rng.randrange(1, 9), n, rng.random() < 0.1)
            elif o == BURST:
                b += burst(rng.randrange(16) * 4, rng.randrange(1, 64),
                           rng.choice([16, 48, 1000, 5000, 20000]), rng.randrange(4))
            elif o == BURST_FREE:
                b += burst_free(rng.randrange(16) * 4, rng.randrange(1, 64), rng.randrange(4))
            elif o == FAIL:
                b += fail(rng.randrange(8), slot, rng.randrange(256))
            else:
                b += misc(rng.choice([MALLOPT, FREE_ALL, NULLS, STATS, MALLINFO, CHECK_ALL, TRIM,
                                      FAULT]),
                          rng.randrange(256))
        s['random-%d' % k] = b + misc(MALLOPT, 2)
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds().items()):
        assert len(data) <= 8192, (name, len(data))
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
    print('%d seeds in %s' % (len(seeds()), out))


if __name__ == '__main__':
    main()
