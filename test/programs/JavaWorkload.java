// JavaWorkload.java - a JVM workload that checks its own results, for java.sh.
//
// usage: java JavaWorkload.java MAPS_FILE   (the JDK's single-file source launcher)
// 1. ConcurrentHashMap: 10 rounds of 8 threads that start, work and end (threads come
//    and go): each merges counts into one shared map and fills a map of its own;
//    every count and every private map is checked after each round.
// 2. Deflater/Inflater (zlib's native state is malloc'd): 8 threads x 40 buffers of
//    1 B .. 1 MiB, compressed, inflated, compared byte for byte and by CRC32; half the
//    Deflaters/Inflaters are end()ed at once, the other half left to the Cleaner
//    thread (their native memory freed by another thread than the one that made it).
// 3. direct ByteBuffers (native memory from malloc) of 1 KiB .. 4 MiB, written, read
//    back, dropped, with System.gc() between rounds.
// Prints one line per step and "java workload ok N" at the end, where N sums the
// counts of step 1 (the same on every run: java.sh compares it); any mismatch throws,
// so the JVM exits non-zero.
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.CRC32;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

public class JavaWorkload {
	static void check(boolean ok, String what) {
		if (!ok) throw new AssertionError(what);
	}

	static void runThreads(int n, java.util.function.IntConsumer body) throws Exception {
		List<Thread> ts = new ArrayList<>();
		Throwable[] err = new Throwable[1];
		for (int t = 0; t < n; t++) {
			final int id = t;
			Thread th = new Thread(() -> body.accept(id), "w" + t);
			th.setUncaughtExceptionHandler((x, e) -> { synchronized (err) { err[0] = e; } });
			ts.add(th);
			th.start();
		}
		for (Thread th : ts) th.join();
		if (err[0] != null) throw new RuntimeException("a worker thread failed", err[0]);
	}

	static long maps() throws Exception {
		final int threads = 8, keys = 20000, per = 50000;
		long total = 0;
		for (int round = 0; round < 10; round++) {
			ConcurrentHashMap<String, Long> shared = new ConcurrentHashMap<>();
			List<ConcurrentHashMap<Integer, String>> own = new ArrayList<>();
			for (int t = 0; t < threads; t++) own.add(new ConcurrentHashMap<>());
			final int r = round;
			runThreads(threads, id -> {
				Random rnd = new Random(r * 1000 + id);
				ConcurrentHashMap<Integer, String> mine = own.get(id);
				for (int i = 0; i < per; i++) {
					int k = rnd.nextInt(keys);
					shared.merge("key-" + k, 1L, Long::sum);
					mine.put(i, "v" + i + "-" + k + "-" + "x".repeat(k % 40));
					if (i % 3 == 0) mine.remove(i / 2);
				}
			});
			long sum = 0;
			for (long v : shared.values()) sum += v;
			check(sum == (long) threads * per, "round " + round + ": counts sum to " + sum);
			for (int t = 0; t < threads; t++) {
				Random rnd = new Random(r * 1000 + t);
				ConcurrentHashMap<Integer, String> want = new ConcurrentHashMap<>();
				for (int i = 0; i < per; i++) {
					int k = rnd.nextInt(keys);
					want.put(i, "v" + i + "-" + k + "-" + "x".repeat(k % 40));
					if (i % 3 == 0) want.remove(i / 2);
				}
				check(want.equals(own.get(t)), "round " + round + ": thread " + t + "'s map");
			}
			total += sum + shared.size();
		}
		return total;
	}

	static void zip() throws Exception {
		AtomicLong bytes = new AtomicLong();
		runThreads(8, id -> {
			Random rnd = new Random(id);
			for (int b = 0; b < 40; b++) {
				int n = 1 + (int) Math.min((1 << 20) - 1, (long) Math.pow(2, rnd.nextDouble() * 20));
				byte[] in = new byte[n];
				for (int i = 0; i < n; i++) in[i] = (byte) ((i % 251) ^ (rnd.nextInt(4) == 0 ? rnd.nextInt() : 0));
				Deflater d = new Deflater(1 + b % 9);
				d.setInput(in);
				d.finish();
				byte[] z = new byte[n + n / 100 + 1024];
				int zn = 0;
				while (!d.finished()) zn += d.deflate(z, zn, z.length - zn);
				Inflater f = new Inflater();
				f.setInput(z, 0, zn);
				byte[] out = new byte[n];
				int on = 0;
				try {
					while (!f.finished()) on += f.inflate(out, on, n - on);
				} catch (java.util.zip.DataFormatException e) {
					throw new RuntimeException(e);
				}
				CRC32 c1 = new CRC32(), c2 = new CRC32();
				c1.update(in);
				c2.update(out);
				check(on == n && Arrays.equals(in, out) && c1.getValue() == c2.getValue(),
					"thread " + id + " buffer " + b + " (" + n + " bytes) came back different");
				if (b % 2 == 0) { d.end(); f.end(); }   // the others: the Cleaner frees them
				bytes.addAndGet(n);
			}
		});
		System.gc();
		System.out.println("zip: " + bytes.get() + " bytes deflated and inflated by 8 threads");
	}

	static void direct() {
		long total = 0;
		for (int round = 0; round < 20; round++) {
			List<ByteBuffer> keep = new ArrayList<>();
			for (int s = 1024; s <= (4 << 20); s *= 4) {
				ByteBuffer b = ByteBuffer.allocateDirect(s + round * 8);
				for (int i = 0; i < b.capacity(); i += 4096) b.put(i, (byte) (i / 4096 + round));
				for (int i = 0; i < b.capacity(); i += 4096) check(b.get(i) == (byte) (i / 4096 + round), "direct buffer");
				total += b.capacity();
				keep.add(b);
			}
			if (round % 5 == 4) System.gc();
		}
		System.out.println("direct: " + total + " bytes of direct buffers");
	}

	public static void main(String[] args) throws Exception {
		Files.write(Path.of(args[0]), Files.readAllBytes(Path.of("/proc/self/maps")));
		long n = maps();
		System.out.println("maps: 10 rounds of 8 threads, every count and map as expected");
		zip();
		direct();
		System.out.println("java workload ok " + n);
	}
}
