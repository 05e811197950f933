package studio.cdc.capture;

import studio.cdc.Version;

/**
 * Lets a client check that an H2 server has our capture classes, and which.
 *
 * <p>core/h2/triggers.py registers {@code CDC_STUDIO.CDC_CAPTURE_VERSION} for
 * {@link #version()}; a server without this jar on its class path fails that
 * statement, and the client reports it instead of installing triggers that
 * could never fire.
 */
public final class Probe {
    /**
     * Bumped whenever the outbox or rule tables change shape, or how rules
     * reach triggers (2: triggers on every operation, rules changed in place).
     */
    public static final int PROTOCOL = 2;

    private Probe() {
    }

    public static String version() {
        return Version.VALUE + "/capture-" + PROTOCOL;
    }
}
