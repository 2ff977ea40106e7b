package dev.ferry.vmm.run;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Class-data sharing for the launcher: the training run that {@code ./ferry} dumps the archive
 * from really boots, serves QMP and migrates; child VMMs map the archive trained for their jar
 * and never a stale one or one for another class path.
 */
class ClassDataSharingTest {
    @TempDir
    Path dir;

    @Test
    void theTrainingRunMigratesOneVmToAnother() {
        assertEquals(0, new CommandLine(new CdsTrainCommand()).execute(), "the training migration completed");
    }

    @Test
    void childrenMapTheArchiveTrainedForTheirJarOnly() throws Exception {
        Path jar = Files.writeString(dir.resolve("ferry.jar"), "jar");
        assertEquals(List.of(), dev.ferry.vmm.process.FerryRunProcess.sharedArchive(jar.toString()), "no archive yet");
        Path jsa = Files.writeString(dir.resolve("ferry.jsa"), "jsa");
        Files.setLastModifiedTime(jar, FileTime.fromMillis(1_000_000));
        Files.setLastModifiedTime(jsa, FileTime.fromMillis(2_000_000));
        assertEquals(List.of("-XX:SharedArchiveFile=" + jsa, "-Xlog:cds*=off"),
                dev.ferry.vmm.process.FerryRunProcess.sharedArchive(jar.toString()));
        Files.setLastModifiedTime(jar, FileTime.fromMillis(3_000_000)); // rebuilt after the training
        assertEquals(List.of(), dev.ferry.vmm.process.FerryRunProcess.sharedArchive(jar.toString()), "a stale archive is not used");
        assertEquals(List.of(), dev.ferry.vmm.process.FerryRunProcess.sharedArchive(dir + File.pathSeparator + jar),
                "a test class path has no archive");
    }
}
