package studio.cdc;

/** Identifies the build of the Kafka CDC Studio JVM module on a class path. */
public final class Version {
    public static final String VALUE = "0.1.0";

    private Version() {
    }

    public static void main(String[] args) {
        System.out.println(VALUE);
    }
}
