package dev.ferry.vmm.vhostuser;

import dev.ferry.vhostuser.check.CheckRule;
import dev.ferry.vhostuser.check.VhostUserCheck;
import dev.ferry.vhostuser.check.VhostUserCheckReport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * {@code ferry vhost-user check --socket PATH --type blk|net [--json] [--skip RULE,...] [--reply-timeout MS]
 * [--serve-timeout MS] [--quiet MS]}: runs
 * {@link VhostUserCheck} on the back-end listening at {@code PATH} and prints the report — a table,
 * or one JSON object with {@code --json}. Exit 0 when every rule held, 1 when one was violated (or
 * the check had to stop), 2 on bad arguments (the reason on stderr).
 */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Check a vhost-user back-end's migration promises: negotiation, reply flags and REPLY_ACK, LOG_ALL"
                + " and LOG_SHMFD, real ring traffic with its dirty log compared page by page against what changed,"
                + " SET_VRING_ENABLE(0), GET_VRING_BASE and a restored ring, and malformed requests.",
                "The check writes to a blk back-end's disk and writes the saved blocks back; for net the back-end must"
                        + " loop frames back (testpmd --forward-mode=macswap --port-topology=loop).",
                "Exit 0: all rules held; 1: a rule was violated or the check stopped; 2: bad arguments."})
public final class VhostUserCheckCommand implements Callable<Integer> {
    @Option(names = "--socket", required = true, paramLabel = "PATH", description = "the back-end's UNIX socket")
    Path socket;

    @Option(names = "--type", required = true, paramLabel = "blk|net", description = "the device the back-end serves")
    String type;

    @Option(names = "--json", description = "print one JSON object instead of the table")
    boolean json;

    @Option(names = "--skip", split = ",", paramLabel = "RULE",
            description = "rules not to exercise: disable, malformed (their probes may crash a back-end), drain (its"
                    + " finding is a race with the back-end)")
    List<String> skip = new ArrayList<>();

    @Option(names = "--reply-timeout", paramLabel = "MS", defaultValue = "2000",
            description = "a reply taking longer is a hang (default ${DEFAULT-VALUE})")
    long replyTimeoutMs;

    @Option(names = "--serve-timeout", paramLabel = "MS", defaultValue = "2000",
            description = "a ring request taking longer is not served (default ${DEFAULT-VALUE})")
    long serveTimeoutMs;

    @Option(names = "--quiet", paramLabel = "MS", defaultValue = "300",
            description = "how long a stopped or disabled ring is watched for writes (default ${DEFAULT-VALUE})")
    long quietMs;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        VhostUserCheck.Options options;
        try {
            Set<CheckRule> skipped = EnumSet.noneOf(CheckRule.class);
            for (String s : skip) {
                skipped.add(CheckRule.byId(s.trim()));
            }
            options = new VhostUserCheck.Options(socket, type, replyTimeoutMs, serveTimeoutMs, quietMs, skipped);
        } catch (IllegalArgumentException e) {
            err.println("ferry vhost-user check: " + e.getMessage());
            err.flush();
            return 2;
        }
        VhostUserCheckReport report = VhostUserCheck.run(options);
        if (json) {
            out.println(CheckReportJson.toJson(report));
        } else {
            CheckReportText.print(report, out);
        }
        out.flush();
        return report.passed() ? 0 : 1;
    }
}
