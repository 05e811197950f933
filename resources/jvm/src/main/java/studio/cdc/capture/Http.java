package studio.cdc.capture;

import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * HTTP POST for the webhook capture path, and as an SQL function.
 *
 * <p>H2 has no HTTP function; core/h2/triggers.py registers
 * {@code CREATE ALIAS CDC_HTTP_POST FOR "studio.cdc.capture.Http.post"}, so
 * {@code CALL CDC_HTTP_POST(url, token, body)} returns the HTTP status (or -1
 * when the receiver cannot be reached). Only loopback URLs are accepted.
 *
 * <p>The webhook path is unreliable on purpose (it is the source notes'
 * approach, kept for comparison): a change is posted when the row changes,
 * before the transaction commits, so changes of rolled-back transactions are
 * sent; and a change made while the receiver is down is lost (logged to the
 * server's stderr, never failing the user's transaction).
 */
public final class Http {
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(2);
    // A receiver that hangs holds each changed row this long (the writer
    // waits), so short; one that is down refuses the connection at once.
    private static final Duration TIMEOUT = Duration.ofSeconds(3);
    private static final HttpClient CLIENT = HttpClient.newBuilder()
            .connectTimeout(CONNECT_TIMEOUT)
            .version(HttpClient.Version.HTTP_1_1)
            .build();

    private Http() {
    }

    /** POSTs {@code body} (JSON) with the token header; the status, or -1. */
    public static int post(String url, String token, String body) {
        URI uri;
        try {
            uri = loopback(url);
        } catch (IllegalArgumentException exc) {
            System.err.println("cdc-studio webhook: " + exc.getMessage());
            return -1;
        }
        HttpRequest request = HttpRequest.newBuilder(uri)
                .timeout(TIMEOUT)
                .header("Content-Type", "application/json")
                .header("X-CDC-Token", token == null ? "" : token)
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8))
                .build();
        try {
            return CLIENT.send(request, HttpResponse.BodyHandlers.discarding()).statusCode();
        } catch (java.io.IOException exc) {
            System.err.println("cdc-studio webhook: change lost, " + url + " unreachable: "
                    + exc);
            return -1;
        } catch (InterruptedException exc) {
            Thread.currentThread().interrupt();
            return -1;
        }
    }

    static URI loopback(String url) {
        URI uri = URI.create(url);
        if (!"http".equals(uri.getScheme()) || uri.getHost() == null) {
            throw new IllegalArgumentException("not an http URL: " + url);
        }
        String host = uri.getHost();
        boolean literal = host.startsWith("[") || host.matches("[0-9.]+");
        if (!literal && !"localhost".equalsIgnoreCase(host)) {
            // Never resolve other names: that alone would reach a DNS server.
            throw new IllegalArgumentException("not a loopback address: " + url);
        }
        try {
            if (!InetAddress.getByName(host).isLoopbackAddress()) {
                throw new IllegalArgumentException("not a loopback address: " + url);
            }
        } catch (UnknownHostException exc) {
            throw new IllegalArgumentException("unknown host in " + url, exc);
        }
        return uri;
    }

    static void postChange(String url, String token, String schema, String table,
            String op, String keyJson, String beforeJson, String afterJson, long changedAtMs) {
        StringBuilder body = new StringBuilder("{\"schema\":");
        Json.string(body, schema);
        body.append(",\"table\":");
        Json.string(body, table);
        body.append(",\"op\":\"").append(op).append('"')
                .append(",\"key\":").append(keyJson == null ? "null" : keyJson)
                .append(",\"before\":").append(beforeJson == null ? "null" : beforeJson)
                .append(",\"after\":").append(afterJson == null ? "null" : afterJson)
                .append(",\"changed_at_ms\":").append(changedAtMs).append('}');
        post(url, token, body.toString());
    }
}
