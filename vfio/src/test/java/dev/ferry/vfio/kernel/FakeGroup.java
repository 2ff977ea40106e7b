package dev.ferry.vfio.kernel;

import java.util.ArrayList;
import java.util.List;

/**
 * An IOMMU group of the {@link FakeVfioKernel}: its devices, whether it is viable, and who holds
 * it — its open group file, the container it joined, devices bound through their cdev.
 */
final class FakeGroup {
    final int number;
    final List<FakeHostDevice> devices = new ArrayList<>();
    boolean viable = true;
    FakeGroupFile opened;
    FakeContainer container;
    int containerUsers;
    int cdevBound;

    FakeGroup(int number) {
        this.number = number;
    }
}
