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
import org.h2.tools.TriggerAdapter;

/**
 * The capture trigger: turns each changed row into a change event, in Java.
 *
 * <p>Installed by core/h2/triggers.py as {@code AFTER <ops> ON <table> FOR
 * EACH ROW CALL "studio.cdc.capture.CaptureTrigger"}. At init it reads the
 * table's capture rule from {@code CDC_STUDIO.CAPTURE_RULES} (operations,
 * changed-columns, predicate, mode) and the primary key from the catalog.
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

    private final List<String> keyColumns = new ArrayList<>();
    private final Set<String> changedColumns = new HashSet<>();
    private String mode = "outbox";
    private boolean tombstone;
    private String webhookUrl;
    private String webhookToken;
    private String predicateSql;
    private String capturedTable;
    private List<String> predicateColumns;

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
        loadRule(conn);
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

    private void loadRule(Connection conn) throws SQLException {
        String predicate = null;
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT MODE, PREDICATE, TOMBSTONE, WEBHOOK_URL, WEBHOOK_TOKEN"
                        + " FROM \"CDC_STUDIO\".\"CAPTURE_RULES\""
                        + " WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")) {
            ps.setString(1, schemaName);
            ps.setString(2, capturedTable);
            try (ResultSet rs = ps.executeQuery()) {
                if (rs.next()) {
                    mode = rs.getString(1);
                    predicate = rs.getString(2);
                    tombstone = rs.getBoolean(3);
                    webhookUrl = rs.getString(4);
                    webhookToken = rs.getString(5);
                }
            }
        }
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT COLUMN_NAME FROM \"CDC_STUDIO\".\"CAPTURE_RULE_COLUMNS\""
                        + " WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")) {
            ps.setString(1, schemaName);
            ps.setString(2, capturedTable);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    changedColumns.add(rs.getString(1));
                }
            }
        }
        if (predicate != null && !predicate.isBlank()) {
            preparePredicate(conn, predicate);
        }
    }

    /** A query that evaluates the predicate over one row bound as parameters. */
    private void preparePredicate(Connection conn, String predicate) throws SQLException {
        predicateColumns = new ArrayList<>();
        StringBuilder select = new StringBuilder("SELECT 1 FROM (SELECT ");
        String probe = "SELECT * FROM " + quote(schemaName) + "." + quote(tableName)
                + " WHERE FALSE";
        try (PreparedStatement ps = conn.prepareStatement(probe);
                ResultSet rs = ps.executeQuery()) {
            ResultSetMetaData meta = rs.getMetaData();
            for (int i = 1; i <= meta.getColumnCount(); i++) {
                if (i > 1) {
                    select.append(", ");
                }
                String column = meta.getColumnLabel(i);
                predicateColumns.add(column);
                select.append("CAST(? AS ").append(castType(meta, i)).append(") AS ")
                        .append(quote(column));
            }
        }
        select.append(") AS T WHERE (").append(predicate).append(')');
        predicateSql = select.toString();
        // Fail at install time, not at the first change, on a bad predicate.
        conn.prepareStatement(predicateSql).close();
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
        Row before = oldRow == null ? null : Row.read(oldRow, keyColumns);
        Row after = newRow == null ? null : Row.read(newRow, keyColumns);
        if (before != null && after != null && !anyWatchedColumnChanged(before, after)) {
            return;
        }
        if (predicateSql != null && !predicateHolds(conn, after != null ? newRow : oldRow)) {
            return;
        }

        if (before != null && after != null && !keyColumns.isEmpty()
                && !before.keyJson.equals(after.keyJson)) {
            emit(conn, "d", before.keyJson, before.json, null);
            emit(conn, "c", after.keyJson, null, after.json);
        } else if (before != null && after != null) {
            emit(conn, "u", after.keyJson, before.json, after.json);
        } else if (after != null) {
            emit(conn, "c", after.keyJson, null, after.json);
        } else if (before != null) {
            emit(conn, "d", before.keyJson, before.json, null);
        }
    }

    private boolean anyWatchedColumnChanged(Row before, Row after) {
        if (changedColumns.isEmpty()) {
            return true;
        }
        for (String column : changedColumns) {
            String old = before.values.get(column);
            if (old != null && !old.equals(after.values.get(column))) {
                return true;
            }
        }
        return false;
    }

    private boolean predicateHolds(Connection conn, ResultSet row) throws SQLException {
        ensurePositioned(row);
        try (PreparedStatement ps = conn.prepareStatement(predicateSql)) {
            for (int i = 0; i < predicateColumns.size(); i++) {
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

    private void emit(Connection conn, String op, String keyJson, String beforeJson,
            String afterJson) throws SQLException {
        long now = System.currentTimeMillis();
        if ("webhook".equals(mode)) {
            Http.postChange(webhookUrl, webhookToken, schemaName, capturedTable, op, keyJson,
                    beforeJson, afterJson, now);
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
            ps.setBoolean(9, tombstone && "d".equals(op));
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
