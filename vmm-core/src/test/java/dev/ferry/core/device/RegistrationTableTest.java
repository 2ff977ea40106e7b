package dev.ferry.core.device;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RegistrationTableTest {
    @Test
    void aRemovedTokenFindsNothingEvenWhenItsSlotIsReused() {
        RegistrationTable<String> table = new RegistrationTable<>();
        long a = table.add("a");
        assertEquals("a", table.get(a));
        table.remove(a);
        assertNull(table.get(a));
        long b = table.add("b"); // same slot, next generation
        assertEquals((int) a, (int) b);
        assertNotEquals(a, b);
        assertNull(table.get(a), "a stale token must not reach the slot's next tenant");
        assertEquals("b", table.get(b));
        table.remove(a); // stale: ignored
        assertEquals("b", table.get(b));
    }

    @Test
    void tokensAreNonNegativeAndNeverNoneAndTheTableGrows() {
        RegistrationTable<Integer> table = new RegistrationTable<>();
        List<Long> tokens = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            long t = table.add(i);
            assertTrue(t >= 0 && t != RegistrationTable.NONE);
            tokens.add(t);
        }
        for (int i = 0; i < 100; i++) {
            assertEquals(i, table.get(tokens.get(i)));
        }
        assertNull(table.get(RegistrationTable.NONE));
        assertNull(table.get(1000));
        Set<Integer> cleared = new HashSet<>();
        table.clear(cleared::add);
        assertEquals(100, cleared.size());
        tokens.forEach(t -> assertNull(table.get(t)));
    }
}
