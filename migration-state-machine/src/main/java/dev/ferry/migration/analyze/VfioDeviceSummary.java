package dev.ferry.migration.analyze;

/**
 * What a stream carried for one VFIO device (an iterable section whose idstr ends in {@code /vfio}).
 *
 * @param dataBlocks      DATA_STATE blocks (device state read from the migration data fd)
 * @param dataBytes       their payload bytes
 * @param configBytes     bytes of the CONFIG_STATE payload (PCI config, MSI-X), 0 when absent
 * @param initDataSent    whether INIT_DATA_SENT (the switchover-ack signal) was sent
 */
public record VfioDeviceSummary(String idstr, long instanceId, long dataBlocks, long dataBytes, long configBytes,
                                boolean initDataSent) {
}
