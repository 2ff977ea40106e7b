package dev.ferry.vmm.demo;

import java.util.ArrayList;
import java.util.List;

/** What the demo proved, per device: filled by {@link DemoCommand}, printed by {@link DemoReport}. */
final class DemoOutcomes {
    private DemoOutcomes() {
    }

    /** What the demo proved. */
    static final class Outcome {
        NicOutcome nic;
        BalloonOutcome balloon;
        String status;
        boolean sourceRunning;
        boolean sourceIntact;
        String sourceState;
        String destinationState;
        boolean memoryEqual;
        boolean continued;
        long stepsReplayed;
        double digestMs;
        double guestPauseMs;
        boolean verified;
        String problem;
        /** The destination's own error-desc after a failed migration, when it is alive to say it. */
        String destinationProblem;
        boolean sourceVfsRunning = true;
        /** The source's open fds before the migrate command and after the outcome settled. */
        long fdsBefore = -1;
        long fdsAfter = -1;
        long totalTimeMs = -1;
        final List<VfOutcome> vfs = new ArrayList<>();
        final List<DiskOutcome> disks = new ArrayList<>();
    }

    /** The NIC's part of the outcome, mostly as the traffic peer saw it. */
    static final class NicOutcome {
        long guestFrames;
        long guestLost;
        long guestDupsOrReorders;
        long peerLost = -1;
        long peerDups;
        String sourcePort;
        String portNow;
        boolean moved;
        boolean sourceContinued;
        final List<String> announces = new ArrayList<>();
        long announceAcks;
        boolean driverOk;
        String problem;

        boolean verified(boolean completed) {
            if (!completed) {
                return sourceContinued && !moved && announces.isEmpty() && guestDupsOrReorders == 0;
            }
            return moved && !announces.isEmpty() && guestDupsOrReorders == 0 && peerDups == 0 && driverOk;
        }
    }

    /** The balloon's part of the outcome. */
    static final class BalloonOutcome {
        long sourceActual;
        long destinationActual = -1;
        long target;
        long givenPages;
        long holesOnDestination = -1;
        long holesOnSource;
        long hintedPages;
        long hintBytesSaved;
        boolean driverOk;
        String problem;

        boolean verified(boolean completed) {
            if (!completed) {
                return sourceActual == target && holesOnSource == givenPages && driverOk;
            }
            return destinationActual == target && holesOnDestination == givenPages && driverOk && hintedPages > 0;
        }
    }

    /** One disk's part of the outcome. */
    static final class DiskOutcome {
        String id;
        String section;
        long drainedAtStop;
        long carried;
        long sourceCompleted;
        long destinationCompleted;
        long writesAcked;
        long blocksWritten;
        boolean imageOk;
        boolean continued;
        String problem;

        boolean verified() {
            return imageOk && continued;
        }
    }

    /** One VF's part of the outcome. */
    static final class VfOutcome {
        String id;
        String sourceState;
        String destinationState;
        long precopyBytes;
        long stopCopyBytes;
        boolean stateEqual;
        boolean ringOk;
        long sourceDeliveries;
        long destinationDeliveries;
        int resets;
        String problem;

        boolean verified() {
            return stateEqual && ringOk && destinationDeliveries > sourceDeliveries && "STOP".equals(sourceState)
                    && "RUNNING".equals(destinationState);
        }
    }
}
