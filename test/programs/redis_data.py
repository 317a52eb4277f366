#!/usr/bin/env python3
"""redis_data.py - write a known data set into a Redis server, or read it all back.

usage: redis_data.py PORT write|verify|pid

The data set is a pure function of the key names, so "verify" needs nothing that
"write" kept. Keys (prefix "bsl:", which redis-benchmark never uses):
  strings  11,700: 10,000 of 1..4096 bytes, 1,500 of 4 KiB..128 KiB, 150 of 128 KiB..1 MiB,
           and the edges (1 B, 16 B +-1, 4 KiB +-1, 16 KiB +-1, 128 KiB +-1, 1 MiB) 3 times;
           every 7th is sent as SET of a first piece and APPENDs of the rest
  churn    after writing: every 5th string is deleted (lazily freed by the server's
           background thread), every 11th left is overwritten with its generation-1 value
  hashes   300 of 50 fields, lists 300 of 50 elements, sets 100 of 40 members
Contents are random.Random(name:generation).randbytes(n). "verify" reads every key
back (GET / HGETALL / LRANGE / SMEMBERS), compares byte for byte, checks that deleted
keys are gone, prints "verified N keys, M bytes" and exits 0, or prints each mismatch
(at most 20) and exits 1. "pid" prints the server's process id (INFO server).
The client is a small RESP one over a socket: no Redis module is needed.
"""
import random
import socket
import sys

KiB, MiB = 1024, 1024 * 1024


def value(name, gen, n):
    return random.Random("%s:%d" % (name, gen)).randbytes(n)


def plan():
    """[(name, size)] of the strings, in writing order."""
    r = random.Random(1)
    out = []
    for i in range(10000):
        out.append(("bsl:s:%d" % i, r.randint(1, 4096)))
    for i in range(1500):
        out.append(("bsl:m:%d" % i, r.randint(4 * KiB, 128 * KiB)))
    for i in range(150):
        out.append(("bsl:l:%d" % i, r.randint(128 * KiB, MiB)))
    edges = [1, 15, 16, 17, 4095, 4096, 4097, 16383, 16384, 16385,
             128 * KiB - 1, 128 * KiB, 128 * KiB + 1, MiB]
    for k in range(3):
        for e in edges:
            out.append(("bsl:e:%d:%d" % (e, k), e))
    return out


def fate(i):
    """what happens to the i-th string after writing: 'del', 'over' or 'keep'."""
    if i % 5 == 0:
        return "del"
    if i % 11 == 0:
        return "over"
    return "keep"


def hash_fields(h):
    r = random.Random("hash:%d" % h)
    return {b"f%d" % f: r.randbytes(r.randint(1, 200)) for f in range(50)}


def list_items(h):
    r = random.Random("list:%d" % h)
    return [r.randbytes(r.randint(1, 300)) for _ in range(50)]


def set_members(h):
    r = random.Random("set:%d" % h)
    return {b"m%d:" % m + r.randbytes(r.randint(0, 30)) for m in range(40)}


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.rd = self.sock.makefile("rb", buffering=1 << 20)
        self.out = []
        self.pending = 0
        self.outbytes = 0

    def send(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = b"%d" % a
            parts.append(b"$%d\r\n" % len(a))
            parts.append(a)
            parts.append(b"\r\n")
        self.out.append(b"".join(parts))
        self.pending += 1
        self.outbytes += len(self.out[-1])

    def flush(self):
        """send what is queued, return the replies in order."""
        self.sock.sendall(b"".join(self.out))
        self.out, self.outbytes = [], 0
        n, self.pending = self.pending, 0
        return [self.reply() for _ in range(n)]

    def maybe_flush(self, replies):
        if self.pending >= 200 or self.outbytes >= 4 * MiB:
            replies.extend(self.flush())

    def reply(self):
        line = self.rd.readline()
        if not line.endswith(b"\r\n"):
            raise IOError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest
        if t == b"-":
            return Error(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rd.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise IOError("bad reply %r" % line[:50])


class Error(str):
    pass


def check_ok(replies, what):
    bad = [r for r in replies if isinstance(r, Error)]
    if bad:
        sys.exit("%s: %d errors, first: %s" % (what, len(bad), bad[0]))


def write(db):
    replies = []
    strings = plan()
    for i, (name, n) in enumerate(strings):
        v = value(name, 0, n)
        if i % 7 == 0 and n > 1:
            cut = [0] + sorted({(n * k) // 5 for k in range(1, 5)}) + [n]
            db.send("SET", name, v[:cut[1]])
            for a, b in zip(cut[1:], cut[2:]):
                if b > a:
                    db.send("APPEND", name, v[a:b])
        else:
            db.send("SET", name, v)
        db.maybe_flush(replies)
    for h in range(300):
        args = []
        for f, v in hash_fields(h).items():
            args += [f, v]
        db.send("HSET", "bsl:h:%d" % h, *args)
        db.send("RPUSH", "bsl:q:%d" % h, *list_items(h))
        db.maybe_flush(replies)
    for h in range(100):
        db.send("SADD", "bsl:t:%d" % h, *sorted(set_members(h)))
    replies.extend(db.flush())
    check_ok(replies, "write")
    replies = []
    for i, (name, n) in enumerate(strings):
        f = fate(i)
        if f == "del":
            db.send("DEL", name)
        elif f == "over":
            db.send("SET", name, value(name, 1, n))
        db.maybe_flush(replies)
    replies.extend(db.flush())
    check_ok(replies, "churn")
    print("wrote %d strings, 300 hashes, 300 lists, 100 sets" % len(strings))


def verify(db):
    bad = []
    nkeys = nbytes = 0
    strings = plan()
    batch = []

    def drain():
        nonlocal nkeys, nbytes
        for (what, name, want), got in zip(batch, db.flush()):
            nkeys += 1
            if what == "list" and isinstance(got, list):
                got = list(got)
            elif what == "hash" and isinstance(got, list):
                got = dict(zip(got[0::2], got[1::2]))
            elif what == "set" and isinstance(got, list):
                got = set(got)
            if got != want:
                bad.append((name, want, got))
            if isinstance(got, bytes):
                nbytes += len(got)
        batch.clear()

    for i, (name, n) in enumerate(strings):
        f = fate(i)
        want = None if f == "del" else value(name, 1 if f == "over" else 0, n)
        db.send("GET", name)
        batch.append(("str", name, want))
        if db.pending >= 100:
            drain()
    for h in range(300):
        db.send("HGETALL", "bsl:h:%d" % h)
        batch.append(("hash", "bsl:h:%d" % h, hash_fields(h)))
        db.send("LRANGE", "bsl:q:%d" % h, 0, -1)
        batch.append(("list", "bsl:q:%d" % h, list_items(h)))
    for h in range(100):
        db.send("SMEMBERS", "bsl:t:%d" % h)
        batch.append(("set", "bsl:t:%d" % h, set_members(h)))
    drain()
    for name, want, got in bad[:20]:
        def show(x):
            if isinstance(x, bytes):
                return "%d bytes %s..." % (len(x), x[:16].hex())
            return repr(x)[:100]
        print("MISMATCH %s: want %s, got %s" % (name, show(want), show(got)))
    print("verified %d keys, %d bytes, %d mismatches" % (nkeys, nbytes, len(bad)))
    return not bad


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    db = Redis(port)
    if mode == "write":
        write(db)
    elif mode == "verify":
        sys.exit(0 if verify(db) else 1)
    elif mode == "pid":
        db.send("INFO", "server")
        info = db.flush()[0].decode()
        print([l.split(":")[1] for l in info.split("\r\n") if l.startswith("process_id:")][0])
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
