package studio.cdc.capture;

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.time.OffsetTime;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.h2.tools.TriggerAdapter;

/**
 * The capture trigger: turns each changed row into a change event, in Java.
 *
 * <p>Installed by core/h2/triggers.py as {@code AFTER INSERT, UPDATE, DELETE
 * ON <table> FOR EACH ROW CALL "studio.cdc.capture.CaptureTrigger"}. At init
 * it reads the table's capture rule from {@code CDC_STUDIO.CAPTURE_RULES}
 * (operations, changed-columns, predicate, mode) and the primary key from the
 * catalog. A changed rule is not a new trigger: the client stores it and calls
 * {@link #ruleChanged} (alias {@code CDC_STUDIO.CDC_RULE_CHANGED}), which reads
 * and checks it in the client's session and hands it to the table's trigger
 * for its next row, so no change slips by between two triggers.
 * On each row it serialises before/after/key exactly (see ValueWriter) and
 * either inserts into {@code CDC_STUDIO.OUTBOX} on the same connection, so
 * the change commits or rolls back with the user's transaction (mode
 * "outbox"), or posts it over HTTP at once (mode "webhook", unreliable by
 * design: see Http).
 *
 * <p>Policies: an update that changes the primary key becomes a delete of
 * the old key followed by a create of the new key (as Debezium does). A
 * table without a primary key gets a null key (OUTBOX.KEY_JSON is NULL).
 */
public final class CaptureTrigger extends TriggerAdapter {
    static final String META_SCHEMA = "CDC_STUDIO";
    /** Capture triggers are named this plus the table's name (core/h2/triggers.py). */
    static final String TRIGGER_PREFIX = "CDC$CAPTURE$";
    private static final String INSERT_OUTBOX = "INSERT INTO \"CDC_STUDIO\".\"OUTBOX\""
            + "(TX_ID, TABLE_SCHEMA, TABLE_NAME, OP, KEY_JSON, BEFORE_JSON, AFTER_JSON,"
            + " CHANGED_AT_MS, TOMBSTONE) VALUES (? || CAST(TRANSACTION_ID() AS VARCHAR),"
            + " ?, ?, ?, ?, ?, ?, ?, ?)";
    /**
     * H2's transaction ids restart with the server: prefixed with the server's
     * start time, the outbox's TX_ID stays unique across restarts.
     * TODO: H2 hands a freed transaction id out again, so separate short
     * transactions can share a TX_ID (seen: three autocommit statements from
     * three clients); an id of our own per transaction needs a hook at
     * transaction start, which H2's trigger API does not give.
     */
    private static final String TX_PREFIX =
            Long.toString(System.currentTimeMillis(), 36) + "-";

    /** Rules changed in place, by table, each stamped from RULE_VERSIONS. */
    private static final ConcurrentHashMap<String, Rule> CHANGED = new ConcurrentHashMap<>();
    private static final AtomicLong RULE_VERSIONS = new AtomicLong();

    private final List<String> keyColumns = new ArrayList<>();
    private String capturedTable;
    private volatile Rule rule;

    /** One table's rule, read whole and replaced whole (triggers fire concurrently). */
    static final class Rule {
        final long version;
        final Set<String> operations = new HashSet<>();
        final Set<String> changedColumns = new HashSet<>();
        String mode = "outbox";
        boolean tombstone;
        String webhookUrl;
        String webhookToken;
        String predicateSql;
        List<String> predicateColumns;

        Rule(long version) {
            this.version = version;
        }
    }

    /**
     * The SQL function behind {@code CDC_STUDIO.CDC_RULE_CHANGED(schema, table)}:
     * reads the table's stored rule in the caller's session, checks it (a bad
     * predicate fails here, not on a user's next write), and makes the table's
     * trigger use it from its next row on. Returns the rule's version.
     */
    public static long ruleChanged(Connection conn, String schema, String table)
            throws SQLException {
        Rule changed = readRule(conn, schema, table, table, RULE_VERSIONS.incrementAndGet());
        CHANGED.put(key(schema, table), changed);
        return changed.version;
    }

    private static String key(String schema, String table) {
        return quote(schema) + "." + quote(table);
    }

    @Override
    public void init(Connection conn, String schemaName, String triggerName,
            String tableName, boolean before, int type) throws SQLException {
        super.init(conn, schemaName, triggerName, tableName, before, type);
        // ALTER TABLE rebuilds a table as a copy with another name and moves
        // its triggers there before renaming it back: the trigger's own name
        // (CDC$CAPTURE$<table>) names the captured table, whatever H2 passed.
        // Column metadata comes from the table H2 passed (the copy, during
        // the rebuild); the rule and the events use the captured table's name.
        int at = triggerName.indexOf(TRIGGER_PREFIX);  // H2 may qualify the name
        capturedTable = at < 0 ? tableName
                : triggerName.substring(at + TRIGGER_PREFIX.length()).replace("\"", "");
        loadKey(conn);
        // Stamped before reading: a change published while this reads is newer.
        long version = RULE_VERSIONS.get();
        rule = readRule(conn, schemaName, capturedTable, tableName, version);
    }

    /** This table's rule: the one read at init, or a newer one changed in place. */
    private Rule currentRule() {
        Rule mine = rule;
        Rule changed = CHANGED.get(key(schemaName, capturedTable));
        if (changed != null && changed.version > mine.version) {
            rule = changed;
            return changed;
        }
        return mine;
    }

    private void loadKey(Connection conn) throws SQLException {
        DatabaseMetaData meta = conn.getMetaData();
        TreeMap<Integer, String> ordered = new TreeMap<>();
        try (ResultSet rs = meta.getPrimaryKeys(null, schemaName, tableName)) {
            while (rs.next()) {
                ordered.put(rs.getInt("KEY_SEQ"), rs.getString("COLUMN_NAME"));
            }
        }
        keyColumns.addAll(ordered.values());
    }

    /**
     * Reads a rule from the rule tables. {@code table} names the rule;
     * {@code columnsOf} is the table whose columns the predicate is checked
     * against (differs from {@code table} only while ALTER TABLE rebuilds it).
     */
    static Rule readRule(Connection conn, String schema, String table, String columnsOf,
            long version) throws SQLException {
        Rule found = new Rule(version);
        String predicate = null;
        boolean stored = false;
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT MODE, PREDICATE, TOMBSTONE, WEBHOOK_URL, WEBHOOK_TOKEN, OPS"
                        + " FROM \"CDC_STUDIO\".\"CAPTURE_RULES\""
                        + " WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")) {
            ps.setString(1, schema);
            ps.setString(2, table);
            try (ResultSet rs = ps.executeQuery()) {
                if (rs.next()) {
                    stored = true;
                    found.mode = rs.getString(1);
                    predicate = rs.getString(2);
                    found.tombstone = rs.getBoolean(3);
                    found.webhookUrl = rs.getString(4);
                    found.webhookToken = rs.getString(5);
                    for (String op : rs.getString(6).split(",")) {
                        found.operations.add(op.trim().toLowerCase(Locale.ROOT));
                    }
                }
            }
        }
        if (!stored) {
            // No stored rule (removed by hand): capture everything, as before.
            found.operations.addAll(List.of("insert", "update", "delete"));
        }
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT COLUMN_NAME FROM \"CDC_STUDIO\".\"CAPTURE_RULE_COLUMNS\""
                        + " WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")) {
            ps.setString(1, schema);
            ps.setString(2, table);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    found.changedColumns.add(rs.getString(1));
                }
            }
        }
        if (predicate != null && !predicate.isBlank()) {
            preparePredicate(conn, found, schema, columnsOf, predicate);
        }
        return found;
    }

    /**
     * Why {@code sql} is not one expression, or null: it is pasted into our
     * query, so a ';' would add a statement run on every write, a comment
     * could hide the rest, and a stray ')' would close our parenthesis.
     * Quoted text is skipped. core/h2/triggers.py checks the same first.
     */
    static String expressionProblem(String sql) {
        int depth = 0;
        int i = 0;
        while (i < sql.length()) {
            char c = sql.charAt(i);
            if (c == '\'' || c == '"') {
                int end = sql.indexOf(c, i + 1);
                while (end != -1 && end + 1 < sql.length() && sql.charAt(end + 1) == c) {
                    end = sql.indexOf(c, end + 2);
                }
                if (end == -1) {
                    return "a quote is not closed";
                }
                i = end + 1;
                continue;
            }
            if (c == ';') {
                return "';' would start another statement";
            }
            if (sql.startsWith("--", i) || sql.startsWith("/*", i) || sql.startsWith("//", i)) {
                return "comments are not allowed";
            }
            if (c == '(') {
                depth++;
            } else if (c == ')' && --depth < 0) {
                return "a ')' has no '('";
            }
            i++;
        }
        return depth == 0 ? null : "a '(' is not closed";
    }

    /** A query that evaluates the predicate over one row bound as parameters. */
    private static void preparePredicate(Connection conn, Rule found, String schema,
            String columnsOf, String predicate) throws SQLException {
        String problem = expressionProblem(predicate);
        if (problem != null) {
            throw new SQLException("capture predicate is not one SQL expression: " + problem);
        }
        List<String> columns = new ArrayList<>();
        StringBuilder select = new StringBuilder("SELECT 1 FROM (SELECT ");
        String probe = "SELECT * FROM " + quote(schema) + "." + quote(columnsOf)
                + " WHERE FALSE";
        try (PreparedStatement ps = conn.prepareStatement(probe);
                ResultSet rs = ps.executeQuery()) {
            ResultSetMetaData meta = rs.getMetaData();
            for (int i = 1; i <= meta.getColumnCount(); i++) {
                if (i > 1) {
                    select.append(", ");
                }
                String column = meta.getColumnLabel(i);
                columns.add(column);
                select.append("CAST(? AS ").append(castType(meta, i)).append(") AS ")
                        .append(quote(column));
            }
        }
        select.append(") AS T WHERE (").append(predicate).append(')');
        String sql = select.toString();
        // Fail when the rule is installed or changed, not at the first change.
        conn.prepareStatement(sql).close();
        found.predicateSql = sql;
        found.predicateColumns = columns;
    }

    private static String castType(ResultSetMetaData meta, int i) throws SQLException {
        String name = meta.getColumnTypeName(i).toUpperCase(Locale.ROOT);
        switch (name) {
            case "NUMERIC", "DECIMAL":
                return "NUMERIC(" + meta.getPrecision(i) + ", " + meta.getScale(i) + ")";
            case "CHARACTER":
                return "CHARACTER(" + meta.getPrecision(i) + ")";
            case "TIME", "TIMESTAMP":
                return name + "(9)";
            case "TIME WITH TIME ZONE":
                return "TIME(9) WITH TIME ZONE";
            case "TIMESTAMP WITH TIME ZONE":
                return "TIMESTAMP(9) WITH TIME ZONE";
            case "ENUM":
                return "CHARACTER VARYING";
            default:
                return name;
        }
    }

    static String quote(String identifier) {
        return '"' + identifier.replace("\"", "\"\"") + '"';
    }

    @Override
    public void fire(Connection conn, ResultSet oldRow, ResultSet newRow) throws SQLException {
        Rule current = currentRule();
        String operation = oldRow == null ? "insert" : newRow == null ? "delete" : "update";
        if (!current.operations.contains(operation)) {
            return;
        }
        Row before = oldRow == null ? null : Row.read(oldRow, keyColumns);
        Row after = newRow == null ? null : Row.read(newRow, keyColumns);
        if (before != null && after != null
                && !anyWatchedColumnChanged(current, before, after)) {
            return;
        }
        if (current.predicateSql != null
                && !predicateHolds(conn, current, after != null ? newRow : oldRow)) {
            return;
        }

        if (before != null && after != null && !keyColumns.isEmpty()
                && !before.keyJson.equals(after.keyJson)) {
            emit(conn, current, "d", before.keyJson, before.json, null);
            emit(conn, current, "c", after.keyJson, null, after.json);
        } else if (before != null && after != null) {
            emit(conn, current, "u", after.keyJson, before.json, after.json);
        } else if (after != null) {
            emit(conn, current, "c", after.keyJson, null, after.json);
        } else if (before != null) {
            emit(conn, current, "d", before.keyJson, before.json, null);
        }
    }

    private static boolean anyWatchedColumnChanged(Rule current, Row before, Row after) {
        if (current.changedColumns.isEmpty()) {
            return true;
        }
        for (String column : current.changedColumns) {
            String old = before.values.get(column);
            if (old != null && !old.equals(after.values.get(column))) {
                return true;
            }
        }
        return false;
    }

    private static boolean predicateHolds(Connection conn, Rule current, ResultSet row)
            throws SQLException {
        ensurePositioned(row);
        try (PreparedStatement ps = conn.prepareStatement(current.predicateSql)) {
            for (int i = 0; i < current.predicateColumns.size(); i++) {
                bindExact(ps, i + 1, row, i + 1);
            }
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next();
            }
        }
    }

    private static void bindExact(PreparedStatement ps, int index, ResultSet row, int column)
            throws SQLException {
        String name = row.getMetaData().getColumnTypeName(column).toUpperCase(Locale.ROOT);
        Object value = switch (name) {
            case "DATE" -> row.getObject(column, LocalDate.class);
            case "TIME" -> row.getObject(column, LocalTime.class);
            case "TIMESTAMP" -> row.getObject(column, LocalDateTime.class);
            case "TIME WITH TIME ZONE" -> row.getObject(column, OffsetTime.class);
            case "TIMESTAMP WITH TIME ZONE" -> row.getObject(column, OffsetDateTime.class);
            default -> row.getObject(column);
        };
        ps.setObject(index, value);
    }

    static void ensurePositioned(ResultSet rs) throws SQLException {
        if (rs.getRow() == 0) {
            rs.next();
        }
    }

    private void emit(Connection conn, Rule current, String op, String keyJson,
            String beforeJson, String afterJson) throws SQLException {
        long now = System.currentTimeMillis();
        if ("webhook".equals(current.mode)) {
            Http.postChange(current.webhookUrl, current.webhookToken, schemaName,
                    capturedTable, op, keyJson, beforeJson, afterJson, now);
            return;
        }
        try (PreparedStatement ps = conn.prepareStatement(INSERT_OUTBOX)) {
            ps.setString(1, TX_PREFIX);
            ps.setString(2, schemaName);
            ps.setString(3, capturedTable);
            ps.setString(4, op);
            ps.setString(5, keyJson);
            ps.setString(6, beforeJson);
            ps.setString(7, afterJson);
            ps.setLong(8, now);
            ps.setBoolean(9, current.tombstone && "d".equals(op));
            ps.executeUpdate();
        }
    }

    /** One row serialised: every column's JSON text, the row object and the key. */
    static final class Row {
        final java.util.Map<String, String> values = new java.util.LinkedHashMap<>();
        String json;
        String keyJson;

        static Row read(ResultSet rs, List<String> keyColumns) throws SQLException {
            ensurePositioned(rs);
            Row row = new Row();
            ResultSetMetaData meta = rs.getMetaData();
            StringBuilder out = new StringBuilder("{");
            for (int i = 1; i <= meta.getColumnCount(); i++) {
                String column = meta.getColumnLabel(i);
                String value = ValueWriter.write(rs, i);
                row.values.put(column, value);
                if (i > 1) {
                    out.append(',');
                }
                Json.string(out, column);
                out.append(':').append(value);
            }
            row.json = out.append('}').toString();
            if (!keyColumns.isEmpty()) {
                StringBuilder key = new StringBuilder("{");
                for (String column : keyColumns) {
                    if (key.length() > 1) {
                        key.append(',');
                    }
                    Json.string(key, column);
                    key.append(':').append(row.values.get(column));
                }
                row.keyJson = key.append('}').toString();
            }
            return row;
        }
    }
}
