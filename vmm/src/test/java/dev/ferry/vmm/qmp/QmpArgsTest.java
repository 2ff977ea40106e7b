package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** QmpArgs refuses bad arguments with QEMU's QAPI visitor messages. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class QmpArgsTest {
    @Test
    void missingRequiredMember() {
        assertRefused("Parameter 'uri' is missing", () -> args("{}").requiredString("uri"));
        assertRefused("Parameter 'state' is missing", () -> args("{}").requiredBool("state"));
        assertRefused("Parameter 'n' is missing", () -> args("{}").requiredLong("n", 0, 9));
    }

    @Test
    void wrongTypesNameTheExpectedType() {
        assertRefused("Invalid parameter type for 'uri', expected: string", () -> args("{\"uri\": 1}").requiredString("uri"));
        assertRefused("Invalid parameter type for 'uri', expected: string", () -> args("{\"uri\": null}").optionalString("uri", "d"));
        assertRefused("Invalid parameter type for 'b', expected: boolean", () -> args("{\"b\": \"true\"}").optionalBool("b", false));
        assertRefused("Invalid parameter type for 'n', expected: integer", () -> args("{\"n\": 1.5}").optionalLong("n", 0, 0, 9));
        assertRefused("Invalid parameter type for 'n', expected: integer",
                () -> args("{\"n\": 99999999999999999999}").requiredLong("n", Long.MIN_VALUE, Long.MAX_VALUE));
        assertRefused("Invalid parameter type for 'l', expected: array", () -> args("{\"l\": {}}").optionalStringList("l"));
        assertRefused("Invalid parameter type for 'l[1]', expected: string", () -> args("{\"l\": [\"a\", 2]}").optionalStringList("l"));
        assertRefused("Invalid parameter type for 'o', expected: object", () -> args("{\"o\": []}").optionalObject("o"));
        assertRefused("Invalid parameter type for 'caps[0]', expected: object", () -> args("{\"caps\": [1]}").requiredObjectList("caps"));
    }

    @Test
    void rangesAndEnums() {
        assertRefused("Parameter 'n' expects a value between 0 and 9", () -> args("{\"n\": 10}").requiredInt("n", 0, 9));
        assertRefused("Parameter 'mode' does not accept value 'x'",
                () -> args("{\"mode\": \"x\"}").requiredEnum("mode", List.of("a", "b")));
        assertEquals(9, args("{\"n\": 9}").requiredInt("n", 0, 9));
        assertEquals("b", args("{\"mode\": \"b\"}").optionalEnum("mode", List.of("a", "b"), "a"));
    }

    @Test
    void defaultsApplyOnlyWhenAbsent() {
        QmpArgs args = args("{}");
        assertEquals("d", args.optionalString("s", "d"));
        assertNull(args.optionalString("s", null));
        assertTrue(args.optionalBool("b", true));
        assertEquals(-5, args.optionalLong("n", -5, 0, 9));
        assertEquals(List.of(), args.optionalStringList("l"));
        assertEquals(List.of(), args.optionalObjectList("o"));
        assertNull(args.optionalObject("o"));
    }

    @Test
    void unreadMembersAreUnexpected() {
        QmpArgs args = args("{\"uri\": \"x\", \"foo\": 1}");
        args.requiredString("uri");
        assertRefused("Parameter 'foo' is unexpected", args::checkNoOtherArguments);
        QmpArgs all = args("{\"uri\": \"x\"}");
        all.requiredString("uri");
        all.checkNoOtherArguments();
    }

    @Test
    void nestedMembersHaveQemuFullNames() {
        QmpArgs args = args("{\"caps\": [{\"capability\": \"a\", \"state\": true}, {\"capability\": \"b\", \"x\": 1}]}");
        List<QmpArgs> caps = args.requiredObjectList("caps");
        assertEquals("a", caps.get(0).requiredString("capability"));
        assertRefused("Parameter 'caps[1].state' is missing", () -> caps.get(1).requiredBool("state"));
        assertRefused("Parameter 'caps[1].x' is unexpected", () -> {
            caps.get(1).requiredString("capability");
            caps.get(1).checkNoOtherArguments();
        });
        QmpArgs nested = args("{\"o\": {\"p\": 1}}").optionalObject("o");
        assertRefused("Invalid parameter type for 'o.p', expected: string", () -> nested.requiredString("p"));
    }

    @Test
    void declaredParametersRefuseOthers() {
        assertRefused("Parameter 'c' is unexpected", () -> args("{\"a\": 1, \"c\": 2}").checkDeclared(Set.of("a", "b")));
        args("{\"a\": 1}").checkDeclared(Set.of("a", "b"));
    }

    private static QmpArgs args(String json) {
        try {
            return QmpArgs.of((ObjectNode) QmpWire.JSON.readTree(json));
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }

    private static void assertRefused(String desc, Executable call) {
        QmpError e = assertThrows(QmpError.class, call);
        assertEquals(QmpError.GENERIC_ERROR, e.errorClass());
        assertEquals(desc, e.desc());
    }
}
