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
 * Follows a migration through QMP {@code query-migrate} until it ends, drawing a live progress bar
 * (transferred, remaining, rate, pass, expected downtime). Shared by {@code ferry migrate} and
 * {@code ferry demo}.
 */
public final class MigrationProgress {
    private MigrationProgress() {
    }

    /**
     * Polls every 100 ms until the status is final; returns the last query-migrate reply.
     * {@code eachPoll} sees every reply (the demo acts on phases there). {@code out} null = no bar.
     */
    public static JsonNode follow(QmpClient qmp, PrintStream out, Duration timeout, Consumer<JsonNode> eachPoll)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        ProgressBar bar = out == null ? null : new ProgressBarBuilder().setTaskName("migrating").setInitialMax(1)
                .setUnit(" MiB", 1 << 20).setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(100)
                .setConsumer(new me.tongfei.progressbar.ConsoleProgressBarConsumer(out)).showSpeed().build();
        try {
            while (true) {
                JsonNode info = qmp.execute("query-migrate", null);
                eachPoll.accept(info);
                String status = info.path("status").asText("none");
                if (bar != null && info.has("ram")) {
                    JsonNode ram = info.get("ram");
                    long transferred = ram.path("transferred").asLong();
                    bar.maxHint(Math.max(transferred + ram.path("remaining").asLong(), 1));
                    bar.stepTo(transferred);
                    bar.setExtraMessage(String.format(" %s, pass %d, %.0f Mbit/s, remaining %d MiB, expected downtime %d ms",
                            status, ram.path("dirty-sync-count").asLong(), ram.path("mbps").asDouble(),
                            ram.path("remaining").asLong() >> 20, info.path("expected-downtime").asLong()));
                }
                if (status.equals("completed") || status.equals("failed") || status.equals("cancelled")) {
                    if (bar != null) {
                        bar.maxHint(Math.max(bar.getCurrent(), 1));
                    }
                    return info;
                }
                if (System.nanoTime() > deadline) {
                    throw new IOException("migration still " + status + " after " + timeout.toSeconds() + " s");
                }
                Thread.sleep(100);
            }
        } finally {
            if (bar != null) {
                bar.close();
            }
        }
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
            out.printf("downtime:        %d ms%n", info.get("downtime").asLong());
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
