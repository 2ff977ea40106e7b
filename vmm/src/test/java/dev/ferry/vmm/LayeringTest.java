package dev.ferry.vmm;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/**
 * The dependency directions of ARCHITECTURE.md: vmm-core depends on nothing of Ferry's; the
 * engine and the devices meet only through the SPI in vmm-core; native code stays in
 * {@code core.sys} (and the kernel-facing layers built on it).
 */
class LayeringTest {
    private static JavaClasses ferry;

    @BeforeAll
    static void importClasses() {
        ferry = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("dev.ferry");
    }

    @Test
    void coreDependsOnNoOtherFerryModule() {
        noClasses().that().resideInAPackage("dev.ferry.core..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.ferry.migration..", "dev.ferry.virtio..",
                        "dev.ferry.vhostuser..", "dev.ferry.vfio..", "dev.ferry.vmm..")
                .check(ferry);
    }

    @Test
    void engineNeverKnowsADevice() {
        noClasses().that().resideInAPackage("dev.ferry.migration..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.ferry.virtio..", "dev.ferry.vhostuser..",
                        "dev.ferry.vfio..", "dev.ferry.vmm..")
                .check(ferry);
    }

    @Test
    void devicesNeverKnowTheEngine() {
        noClasses().that().resideInAnyPackage("dev.ferry.virtio..", "dev.ferry.vhostuser..", "dev.ferry.vfio..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.ferry.migration..", "dev.ferry.vmm..")
                .allowEmptyShould(true)
                .check(ferry);
    }

    @Test
    void nativeBindingsStayInSys() {
        noClasses().that().resideOutsideOfPackages("dev.ferry.core.sys..")
                .should().dependOnClassesThat().resideInAnyPackage("jnr.ffi..", "jnr.posix..")
                .check(ferry);
    }
}
