package dev.ferry.vfio.emulated;

import dev.ferry.vfio.device.DmaSpace;

import java.util.ArrayList;
import java.util.List;

/**
 * An emulated SR-IOV physical function: what {@code sriov_totalvfs} and {@code sriov_numvfs} are
 * on a real NIC. It creates VFs at indices {@code 0..totalVfs-1}, each an {@link EmulatedNicVf}
 * named {@code <pf>vf<index>} whose wire is seeded by the spec's seed and the index, and it owns
 * them: {@link #close()} closes every VF it made.
 *
 * <p>Thread-safe; VFs are created and destroyed by the VMM while it builds or tears down a machine.
 */
public final class EmulatedSriovPf implements AutoCloseable {
    private final String name;
    private final EmulatedNicVf[] vfs;
    private boolean closed;

    public EmulatedSriovPf(String name, int totalVfs) {
        if (totalVfs < 1 || totalVfs > 256) {
            throw new IllegalArgumentException(name + ": total VF count " + totalVfs + " outside 1..256");
        }
        this.name = name;
        this.vfs = new EmulatedNicVf[totalVfs];
    }

    public String name() {
        return name;
    }

    /** {@code sriov_totalvfs}: how many VFs this PF can have. */
    public int totalVfs() {
        return vfs.length;
    }

    /** {@code sriov_numvfs}: how many VFs exist now. */
    public synchronized int numVfs() {
        int n = 0;
        for (EmulatedNicVf vf : vfs) {
            n += vf == null ? 0 : 1;
        }
        return n;
    }

    /**
     * Creates VF {@code index} from {@code spec}, DMAing into {@code dma}.
     *
     * @throws IllegalArgumentException if {@code index} is outside {@code 0..totalVfs-1}
     * @throws IllegalStateException if that VF exists already or the PF is closed
     */
    public synchronized EmulatedNicVf createVf(int index, EmulatedVfSpec spec, DmaSpace dma) {
        return createVf(index, name + "vf" + index, spec, dma);
    }

    /** As {@link #createVf(int, EmulatedVfSpec, DmaSpace)}, with the name the VMM knows the VF by. */
    public synchronized EmulatedNicVf createVf(int index, String vfName, EmulatedVfSpec spec, DmaSpace dma) {
        if (closed) {
            throw new IllegalStateException(name + " is closed");
        }
        if (index < 0 || index >= vfs.length) {
            throw new IllegalArgumentException(name + " has " + vfs.length + " VFs (sriov_totalvfs); VF index " + index
                    + " is out of range");
        }
        if (vfs[index] != null) {
            throw new IllegalStateException(name + ": VF " + index + " exists already (" + vfs[index].name() + ")");
        }
        EmulatedNicVf vf = new EmulatedNicVf(vfName, index, spec, dma);
        vfs[index] = vf;
        return vf;
    }

    /** The VF at {@code index}, or null. */
    public synchronized EmulatedNicVf vf(int index) {
        return index >= 0 && index < vfs.length ? vfs[index] : null;
    }

    /** The VFs that exist, by index. */
    public synchronized List<EmulatedNicVf> vfs() {
        List<EmulatedNicVf> out = new ArrayList<>();
        for (EmulatedNicVf vf : vfs) {
            if (vf != null) {
                out.add(vf);
            }
        }
        return List.copyOf(out);
    }

    /** Closes and removes VF {@code index}; false if there was none. */
    public boolean destroyVf(int index) {
        EmulatedNicVf vf;
        synchronized (this) {
            vf = vf(index);
            if (vf == null) {
                return false;
            }
            vfs[index] = null;
        }
        vf.close();
        return true;
    }

    @Override
    public void close() {
        List<EmulatedNicVf> all;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            all = vfs();
            java.util.Arrays.fill(vfs, null);
        }
        all.forEach(EmulatedNicVf::close);
    }

    @Override
    public String toString() {
        return name + " (" + numVfs() + "/" + vfs.length + " VFs)";
    }
}
