package dev.ferry.vmm.bench;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.NativeMemory;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The zero-page scan RAM migration runs on every page that may hold data (RamSender, and
 * multifd's channel threads): {@link NativeMemory#isZero} over one 4 KiB page. Measured on one
 * thread over guest RAM that is resident and all zero (written with zeros: the scan must read
 * every byte, as for a page the guest zeroed), and over RAM whose every page has one non-zero
 * byte at its end (the same reads, the answer no). The score is nanoseconds per page; GB/s per
 * core is 4096 / score.
 * Run: {@code ./ferry bench ZeroPageScanBenchmark}.
 */
@State(Scope.Thread)
@Fork(value = 1, jvmArgsAppend = {"-Xmx256m"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class ZeroPageScanBenchmark {
    private static final int PAGE = 4096;

    /** The RAM scanned: larger than any cache, as a guest's is. */
    @Param({"1024"})
    public int ramMiB;

    /** {@code zero}: every page all zero; {@code tail}: one non-zero byte at each page's end. */
    @Param({"zero", "tail"})
    public String content;

    private GuestMemory memory;
    private long host;
    private long pages;

    @Setup
    public void setUp() {
        memory = GuestMemory.ofSize((long) ramMiB << 20);
        GuestRegion r = memory.regions().get(0);
        host = r.hostAddress(0);
        pages = r.size() / PAGE;
        NativeMemory.fill(host, r.size(), (byte) 0); // resident, so the scan reads memory, not the zero page
        if (content.equals("tail")) {
            for (long p = 0; p < pages; p++) {
                NativeMemory.fill(host + p * PAGE + PAGE - 1, 1, (byte) 1);
            }
        }
    }

    @TearDown
    public void tearDown() {
        memory.close();
    }

    /** One pass over all of RAM, page by page. */
    @Benchmark
    @OperationsPerInvocation(262_144) // pages of the default 1 GiB; other sizes: scale the score
    public long scan() {
        long zero = 0;
        for (long p = 0; p < pages; p++) {
            if (NativeMemory.isZero(host + p * PAGE, PAGE)) {
                zero++;
            }
        }
        return zero;
    }
}
