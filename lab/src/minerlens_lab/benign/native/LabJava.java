// Benign JVM workloads for the minerlens lab (compiled once with javac into the lab cache).
//
//   java LabJava hash  THREADS LOG          double SHA-256 over an 80-byte header with a moving nonce, in
//                                           THREADS threads: a checksum/dedup/proof job hashing all day
//   java LabJava yield THREADS LOG ROUNDS   THREADS workers take small tasks (about ROUNDS SHA-256 blocks
//                                           each) from a shared queue and Thread.yield() between tasks, as
//                                           cooperative schedulers and "yielding" wait strategies do
//
// Every 2 s the main thread appends "<seconds> <total-operations>" to LOG. Runs until killed.

import java.io.FileWriter;
import java.io.IOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

public final class LabJava {
    private static final LongAdder OPS = new LongAdder();

    private LabJava() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: LabJava hash|yield THREADS LOG [ROUNDS]");
            System.exit(2);
        }
        String mode = args[0];
        int threads = Integer.parseInt(args[1]);
        String log = args[2];
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 256;
        ConcurrentLinkedQueue<long[]> queue = new ConcurrentLinkedQueue<>();
        AtomicLong produced = new AtomicLong();
        for (int t = 0; t < threads; t++) {
            final int id = t;
            Thread th;
            switch (mode) {
                case "hash":
                    th = new Thread(() -> hashLoop(id), "hasher-" + t);
                    break;
                case "yield":
                    th = new Thread(() -> yieldLoop(queue, produced, rounds), "worker-" + t);
                    break;
                default:
                    System.err.println("unknown mode " + mode);
                    System.exit(2);
                    return;
            }
            th.setDaemon(true);
            th.start();
        }
        long t0 = System.nanoTime();
        while (true) {
            Thread.sleep(2000);
            try (FileWriter w = new FileWriter(log, true)) {
                w.write(String.format("%.1f %d%n", (System.nanoTime() - t0) / 1e9, OPS.sum()));
            }
        }
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void hashLoop(int id) {
        MessageDigest md = sha256();
        byte[] header = new byte[80];
        for (int i = 0; i < header.length; i++) {
            header[i] = (byte) (i * 31 + id);
        }
        long nonce = 0;
        long best = Long.MAX_VALUE;
        while (true) {
            for (int k = 0; k < 4096; k++, nonce++) {
                header[76] = (byte) nonce;
                header[77] = (byte) (nonce >>> 8);
                header[78] = (byte) (nonce >>> 16);
                header[79] = (byte) (nonce >>> 24);
                byte[] h = md.digest(md.digest(header));
                long lead = ((h[31] & 0xffL) << 8) | (h[30] & 0xffL);
                if (lead < best) {
                    best = lead;
                }
            }
            OPS.add(4096);
        }
    }

    private static void yieldLoop(ConcurrentLinkedQueue<long[]> queue, AtomicLong produced, int rounds) {
        MessageDigest md = sha256();
        byte[] block = new byte[64];
        while (true) {
            long[] task = queue.poll();
            if (task == null) {
                // the queue ran dry: this worker produces the next batch of tasks for everybody
                for (int i = 0; i < 64; i++) {
                    queue.add(new long[] {produced.incrementAndGet(), rounds / 2 + (i * rounds) / 64});
                }
                continue;
            }
            for (int r = 0; r < task[1]; r++) {
                block[0] = (byte) task[0];
                block[1] = (byte) r;
                block = java.util.Arrays.copyOf(md.digest(block), 64);
            }
            OPS.increment();
            Thread.yield();
        }
    }
}
