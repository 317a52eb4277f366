// node_workload.js - a Node.js workload that checks its own results, for node.sh.
//
// usage: node node_workload.js MAPS_FILE
// 1. a large object graph (40,000 records: nested objects, arrays, strings, Maps turned
//    into arrays, shared children), JSON.stringify'd, parsed back, compared deeply with
//    the original and stringified again to the same text; sha256 of the text printed.
// 2. worker threads that come and go: 5 waves of 4 workers, each builds the graph of
//    its own seed, round-trips it through JSON and through a structured clone
//    (postMessage), deflates and inflates 1 MiB of it with zlib, and sends back the
//    sha256 of its text; the main thread computes the same seeds itself and compares.
// 3. Buffers of 1 B .. 4 MiB filled, copied, compared and dropped (malloc'd backing
//    stores), with forced garbage collection when node runs with --expose-gc.
// Prints one line per step and "node workload ok DIGEST" at the end, where DIGEST
// hashes every seed's digest (the same on every run: node.sh compares it with the
// digest it expects); any mismatch throws, so node exits non-zero.
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const crypto = require('crypto');
const zlib = require('zlib');
const fs = require('fs');
const assert = require('assert');

// a small deterministic generator (xorshift32), so every seed gives the same graph
function rng(seed) {
	let x = seed >>> 0 || 1;
	return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

function graph(seed, n) {
	const r = rng(seed);
	const shared = [];
	for (let i = 0; i < 64; i++) shared.push({ id: i, tag: 'shared-' + (r() % 1000) });
	const out = [];
	for (let i = 0; i < n; i++) {
		const k = r();
		const m = new Map();
		for (let j = 0; j < (k % 5); j++) m.set('k' + j, r() % 100000);
		out.push({
			id: i,
			name: 'record-' + i + '-' + (k % 9973).toString(36),
			text: 'x'.repeat(k % 300) + String.fromCharCode(0x41 + (k % 26)),
			num: (k % 1000000) / 7,
			flags: [k & 1, (k >> 1) & 1, (k >> 2) & 1].map(Boolean),
			tags: Array.from({ length: k % 7 }, (_, j) => 't' + ((k >> j) & 0xff)),
			map: Array.from(m.entries()),
			child: shared[k % 64],
			nested: { a: { b: { c: [i, k % 17, { d: 'deep' + (k % 3) }] } } },
		});
	}
	return out;
}

function sha(s) { return crypto.createHash('sha256').update(s).digest('hex'); }

function roundTrip(seed, n) {
	const g = graph(seed, n);
	const text = JSON.stringify(g);
	const back = JSON.parse(text);
	assert.deepStrictEqual(back, JSON.parse(JSON.stringify(back)));
	assert.strictEqual(JSON.stringify(back), text);
	assert.strictEqual(back.length, n);
	assert.strictEqual(back[n - 1].nested.a.b.c[0], n - 1);
	return text;
}

function zlibRoundTrip(text) {
	const raw = Buffer.from(text.slice(0, 1 << 20));
	const z = zlib.deflateSync(raw, { level: 6 });
	const back = zlib.inflateSync(z);
	assert.ok(raw.equals(back), 'zlib round trip');
	return z.length;
}

const WORKER_RECORDS = 8000;

if (!isMainThread) {
	const { seed } = workerData;
	const text = roundTrip(seed, WORKER_RECORDS);
	const clone = structuredClone(JSON.parse(text));
	assert.strictEqual(JSON.stringify(clone), text);
	zlibRoundTrip(text);
	parentPort.postMessage({ seed, digest: sha(text), sample: clone[seed % WORKER_RECORDS] });
	return;
}

function runWorker(seed) {
	return new Promise((resolve, reject) => {
		const w = new Worker(__filename, { workerData: { seed } });
		w.once('message', resolve);
		w.once('error', reject);
		w.once('exit', (code) => { if (code !== 0) reject(new Error('worker exit ' + code)); });
	});
}

async function main() {
	fs.writeFileSync(process.argv[2], fs.readFileSync('/proc/self/maps'));
	const big = roundTrip(7, 40000);
	console.log('graph: 40000 records, ' + big.length + ' bytes of JSON, sha256 ' + sha(big).slice(0, 16));

	const digests = [];
	for (let wave = 0; wave < 5; wave++) {
		const seeds = [1, 2, 3, 4].map((j) => 100 + wave * 4 + j);
		const got = await Promise.all(seeds.map(runWorker));
		for (const m of got) {
			const text = roundTrip(m.seed, WORKER_RECORDS);
			assert.strictEqual(m.digest, sha(text), 'worker ' + m.seed + ' digest');
			assert.deepStrictEqual(m.sample, JSON.parse(text)[m.seed % WORKER_RECORDS]);
			digests.push(m.digest);
		}
	}
	console.log('workers: 20 in 5 waves, every digest as computed here');

	let total = 0;
	for (let round = 0; round < 40; round++) {
		const bufs = [];
		for (let s = 1; s <= (4 << 20); s *= 4) {
			const b = Buffer.alloc(s + round, (s + round) & 0xff);
			const c = Buffer.from(b);
			assert.ok(b.equals(c));
			total += c.length;
			bufs.push(c);
		}
		if (global.gc && round % 10 === 9) global.gc();
	}
	console.log('buffers: ' + total + ' bytes copied and compared');
	console.log('node workload ok ' + sha(digests.join(',') + sha(big)).slice(0, 32));
}

main().catch((e) => { console.error(e); process.exit(1); });
