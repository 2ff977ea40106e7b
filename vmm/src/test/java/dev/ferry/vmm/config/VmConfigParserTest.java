package dev.ferry.vmm.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VmConfigParserTest {
    @Test
    void fullConfig() throws Exception {
        VmConfig c = VmConfigParser.parse("""
                {"name": "vm0", "memory": {"size": "1G", "prealloc": true}, "vcpus": 2, "engine": "soft",
                 "workload": {"dirty-rate": "50M", "working-set": "256M", "seed": 7, "populate": 0.5},
                 "devices": []}""", "vm.json");
        assertEquals("vm0", c.name());
        assertEquals(1L << 30, c.memoryBytes());
        assertTrue(c.prealloc());
        assertEquals(2, c.vcpus());
        assertEquals(VmConfig.Engine.SOFT, c.engine());
        assertEquals(50L << 20, c.workload().dirtyRateBytesPerSec());
        assertEquals(256L << 20, c.workload().workingSetBytes());
        assertEquals(7, c.workload().seed());
        assertEquals(0.5, c.workload().populate());
        assertTrue(!c.hugetlb(), "4 KiB pages unless asked");
        assertTrue(VmConfigParser.parse("{\"memory\": {\"size\": \"64M\", \"hugetlb\": true}}", "vm.json").hugetlb());
    }

    @Test
    void defaults() throws Exception {
        VmConfig c = VmConfigParser.parse("{\"memory\": {\"size\": 67108864}}", "vm.json");
        assertEquals("vm", c.name());
        assertEquals(1, c.vcpus());
        assertEquals(VmConfig.Engine.AUTO, c.engine());
        assertEquals(64L << 20, c.workload().workingSetBytes(), "working set defaults to min(RAM, 256M)");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "{                                                   | vm.json: memory: missing",
            "{\"memory\": {\"size\": \"1X\"}}                    | vm.json: memory.size: '1X' is not a size",
            "{\"memory\": {\"size\": \"1G\", \"huge\": true}}    | vm.json: memory.huge: unknown field",
            "{\"memory\": {\"size\": \"1G\"}, \"vcpu\": 2}       | vm.json: vcpu: unknown field",
            "{\"memory\": {\"size\": \"1G\"}, \"vcpus\": 0}      | vm.json: vcpus: must be an integer from 1 to 64",
            "{\"memory\": {\"size\": \"1G\"}, \"engine\": \"hw\"}| vm.json: engine: 'hw' is not an engine",
            "{\"memory\": {\"size\": \"1000\"}}                  | vm.json: memory.size: 1000 bytes: must be at least 1M",
            "{\"memory\": {\"size\": \"65M\", \"hugetlb\": true}} | vm.json: memory.size: 68157440 bytes: with \"hugetlb\": true it must be a multiple of 2M",
            "{\"memory\": {\"size\": \"64M\", \"hugetlb\": \"2M\"}} | vm.json: memory.hugetlb:",
            "{\"memory\": {\"size\": \"64M\"}, \"workload\": {\"working-set\": \"128M\"}} | vm.json: workload.working-set: 134217728 bytes: must be a multiple of 4K within memory.size",
            "{\"memory\": {\"size\": \"64M\"}, \"workload\": {\"populate\": 2}} | vm.json: workload.populate: 2.0 must be between 0 and 1",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"g0\", \"kind\": \"virtio-gpu\"}]} | vm.json: devices[0].kind: 'virtio-gpu' is not a device kind",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"n0\", \"kind\": \"virtio-net\"}]} | vm.json: devices[0].netdev: missing",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"n0\", \"kind\": \"virtio-net\", \"netdev\": \"vde:x\"}]} | vm.json: devices[0].netdev: 'vde:x' is not tap:NAME",
            "[1, 2]                                              | vm.json: the config must be a JSON object",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"vf0\", \"kind\": \"vf\", \"flags\": \"warp\"}]} | vm.json: devices[0].flags: unknown VF flag 'warp'",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"vf0\", \"kind\": \"vf\", \"flags\": 3}]} | vm.json: devices[0].flags: must be a string",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"vf0\", \"kind\": \"vf\", \"bar\": 3}]} | vm.json: devices[0].bar: unknown field",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"vf0\", \"kind\": \"vf\"}, {\"id\": \"vf0\", \"kind\": \"vf\"}]} | vm.json: devices[1].id: 'vf0' is already used",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"0x\", \"kind\": \"vf\"}]} | vm.json: devices[0].id: '0x' must be",
            "{\"memory\": {\"size\": \"64M\"}, \"devices\": [{\"id\": \"n1\", \"kind\": \"vfio\"}]} | vm.json: devices[0].host: must name the device",
    })
    void badConfigNamesTheFieldAndTheProblem(String json, String expected) {
        String input = json.trim().equals("{") ? "{}" : json.trim();
        ConfigException e = assertThrows(ConfigException.class, () -> VmConfigParser.parse(input, "vm.json"));
        assertTrue(e.getMessage().startsWith(expected.trim()), e.getMessage());
    }

    @Test
    void vfsAreDevices() throws Exception {
        VmConfig c = VmConfigParser.parse("""
                {"memory": {"size": "64M"}, "devices": [
                  {"id": "vf0", "kind": "vf", "flags": "stop-copy,p2p,state=1M"},
                  {"id": "vf1", "kind": "vf"},
                  {"id": "nic", "kind": "vfio", "host": "0000:3b:00.2"}]}""", "vm.json");
        assertEquals(3, c.devices().size());
        assertEquals("vf", c.devices().get(0).kind());
        assertEquals("stop-copy,p2p,state=1M", c.devices().get(0).options().path("flags").asText());
        assertEquals("0000:3b:00.2", c.devices().get(2).options().path("host").asText());
    }

    @Test
    void brokenJsonSaysWhere() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> VmConfigParser.parse("{\"memory\": {\"size\": \"1G\"},\n \"vcpus\": }", "vm.json"));
        assertTrue(e.getMessage().contains("not valid JSON") && e.getMessage().contains("line 2"), e.getMessage());
    }

    @Test
    void sizes() {
        assertEquals(512L << 20, Sizes.parse("512M"));
        assertEquals(4096, Sizes.parse("4096"));
        assertEquals(2L << 40, Sizes.parse("2t"));
        assertThrows(IllegalArgumentException.class, () -> Sizes.parse("-1M"));
        assertThrows(IllegalArgumentException.class, () -> Sizes.parse("99999999999T"));
    }
}
