package dev.ferry.core.memory;

/** A guest access outside every region, or across a region's end: an error, never a crash. */
public class GuestMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public GuestMemoryException(String message) {
        super(message);
    }
}
