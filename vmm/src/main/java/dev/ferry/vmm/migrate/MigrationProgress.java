package dev.ferry.vmm.migrate;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.qmp.QmpClient;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.io.IOException;
import java.io.PrintStream;
import java.time.Duration;
import java.util.function.Consumer;

/**
 * Follows a migration through QMP {@code query-migrate} until it ends, showing its progress
 * (transferred, remaining, rate, pass, expected downtime): a live bar on a terminal, plain lines
 * once a second otherwise (a pipe or a log file would receive the bar's carriage-return
 * fragments). Shared by {@code ferry migrate} and {@code ferry demo}.
 */
public final class MigrationProgress {
    /** How progress is shown. */
    public enum Display {
        /** A bar redrawn in place: for a terminal. */
        BAR,
        /** One complete line per second and one at the end: for pipes and files. */
        LINES,
        /** Nothing. */
        NONE;

        /** {@link #BAR} when the process has a terminal, else {@link #LINES}. */
        public static Display forConsole() {
            return System.console() != null ? BAR : LINES;
        }
    }

    /** One {@code query-migrate}. */
    @FunctionalInterface
    public interface Query {
        JsonNode queryMigrate() throws IOException;
    }

    private static final long LINE_INTERVAL_NANOS = 1_000_000_000L;

    private MigrationProgress() {
    }

    /**
     * Polls every 100 ms until the status is final; returns the last query-migrate reply.
     * {@code eachPoll} sees every reply (the demo acts on phases there). {@code out} null = no bar.
     */
    public static JsonNode follow(QmpClient qmp, PrintStream out, Duration timeout, Consumer<JsonNode> eachPoll)
            throws IOException, InterruptedException {
        return follow(() -> qmp.execute("query-migrate", null), out, out == null ? Display.NONE : Display.forConsole(),
                timeout, Duration.ofMillis(100), eachPoll);
    }

    /** {@link #follow(QmpClient, PrintStream, Duration, Consumer)} with the display and poll interval chosen. */
    public static JsonNode follow(Query query, PrintStream out, Display display, Duration timeout, Duration poll,
                                  Consumer<JsonNode> eachPoll) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        long nextLine = System.nanoTime();
        ProgressBar bar = display != Display.BAR ? null : new ProgressBarBuilder().setTaskName("migrating").setInitialMax(1)
                .setUnit(" MiB", 1 << 20).setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(100)
                .setConsumer(new me.tongfei.progressbar.ConsoleProgressBarConsumer(out)).showSpeed().build();
        try {
            while (true) {
                JsonNode info = query.queryMigrate();
                eachPoll.accept(info);
                String status = info.path("status").asText("none");
                boolean done = status.equals("completed") || status.equals("failed") || status.equals("cancelled");
                if (display == Display.LINES && info.has("ram") && (done || System.nanoTime() - nextLine >= 0)) {
                    out.println(line(info));
                    out.flush();
                    nextLine = System.nanoTime() + LINE_INTERVAL_NANOS;
                }
                if (bar != null && info.has("ram")) {
                    JsonNode ram = info.get("ram");
                    long transferred = ram.path("transferred").asLong();
                    bar.maxHint(Math.max(transferred + ram.path("remaining").asLong(), 1));
                    bar.stepTo(transferred);
                    bar.setExtraMessage(String.format(" %s, pass %d, %.0f Mbit/s, remaining %d MiB, expected downtime %d ms",
                            status, ram.path("dirty-sync-count").asLong(), ram.path("mbps").asDouble(),
                            ram.path("remaining").asLong() >> 20, info.path("expected-downtime").asLong()));
                }
                if (done) {
                    if (bar != null) {
                        bar.maxHint(Math.max(bar.getCurrent(), 1));
                    }
                    return info;
                }
                if (System.nanoTime() > deadline) {
                    throw new IOException("migration still " + status + " after " + timeout.toSeconds() + " s");
                }
                Thread.sleep(poll.toMillis());
            }
        } finally {
            if (bar != null) {
                bar.close();
            }
        }
    }

    /** A plain progress line: status, pass, transferred, remaining, rate, expected downtime. */
    static String line(JsonNode info) {
        JsonNode ram = info.get("ram");
        return String.format("migrating: %s, pass %d, %d/%d MiB transferred, remaining %d MiB, %.0f Mbit/s, expected downtime %d ms",
                info.path("status").asText("none"), ram.path("dirty-sync-count").asLong(),
                ram.path("transferred").asLong() >> 20, (ram.path("transferred").asLong() + ram.path("remaining").asLong()) >> 20,
                ram.path("remaining").asLong() >> 20, ram.path("mbps").asDouble(), info.path("expected-downtime").asLong());
    }

    /** The final report of a source's query-migrate reply. */
    public static void report(JsonNode info, PrintStream out) {
        String status = info.path("status").asText();
        out.printf("status:          %s%n", status);
        if (info.has("error-desc")) {
            out.printf("error:           %s%n", info.get("error-desc").asText());
        }
        long total = info.path("total-time").asLong();
        out.printf("total time:      %d ms (setup %d ms)%n", total, info.path("setup-time").asLong());
        if (info.has("downtime")) {
            out.printf("downtime:        %d ms (QEMU's definition: VM stop to the stream's last byte sent)%n",
                    info.get("downtime").asLong());
        }
        if (info.has("x-ferry-guest-pause")) {
            out.printf("guest pause:     %d ms (vCPUs paused on the source to running on the destination)%n",
                    info.get("x-ferry-guest-pause").asLong());
            StringBuilder sb = new StringBuilder();
            info.path("x-ferry-downtime-breakdown").fields().forEachRemaining(f -> sb.append(sb.length() == 0 ? "" : ", ")
                    .append(f.getKey().replace("-us", "")).append(String.format(" %.1f", f.getValue().asLong() / 1000.0)));
            out.printf("  phases (ms):   %s%n", sb);
        }
        JsonNode ram = info.path("ram");
        out.printf("transferred:     %.1f MiB in %d passes, %.0f Mbit/s average%n", ram.path("transferred").asLong() / 1048576.0,
                ram.path("dirty-sync-count").asLong(), total > 0 ? ram.path("transferred").asLong() * 8.0 / 1e3 / total : 0.0);
        out.printf("pages:           %d normal, %d zero%n", ram.path("normal").asLong(), ram.path("duplicate").asLong());
        if (info.has("cpu-throttle-percentage")) {
            out.printf("cpu throttle:    %d %%%n", info.get("cpu-throttle-percentage").asInt());
        }
    }
}
