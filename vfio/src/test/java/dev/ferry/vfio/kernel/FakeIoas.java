package dev.ferry.vfio.kernel;

/** An iommufd IO address space: its mappings, the devices attached, the page table made for them. */
final class FakeIoas {
    final int id;
    final FakeIovaTable table = new FakeIovaTable();
    int attached;
    int hwptId;

    FakeIoas(int id) {
        this.id = id;
    }
}
