package studio.cdc.tools;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;

/**
 * Creates an H2 database file owned by the given user. The password is read
 * from standard input so that it never shows on a command line.
 *
 * <p>Usage: {@code CreateDatabase <path-without-.mv.db> <user>}
 */
public final class CreateDatabase {
    private CreateDatabase() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: CreateDatabase <path> <user> (password on stdin)");
            System.exit(2);
        }
        BufferedReader in = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String password = in.readLine();
        if (password == null || password.isEmpty()) {
            System.err.println("no password on standard input");
            System.exit(2);
        }
        String url = "jdbc:h2:file:" + args[0];
        try (Connection conn = DriverManager.getConnection(url, args[1], password)) {
            conn.createStatement().execute("SELECT 1");
        }
    }
}
