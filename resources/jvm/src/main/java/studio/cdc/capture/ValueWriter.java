package studio.cdc.capture;

import java.math.BigDecimal;
import java.sql.Array;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.time.OffsetTime;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.Locale;
import java.util.UUID;

/**
 * Writes one column of the current row of a result set as exact JSON text.
 *
 * <p>The mapping (documented in core/cdc/events.py as well):
 * integers as numbers; DECIMAL/NUMERIC as a string with its scale
 * ("12.50"); DECFLOAT as a string; REAL/DOUBLE as numbers (NaN and
 * infinities as strings); BOOLEAN as true/false; DATE, TIME, TIMESTAMP as
 * ISO-8601 text read as java.time values (so no JVM default time zone is
 * involved); TIME/TIMESTAMP WITH TIME ZONE as ISO text with the offset;
 * BINARY/VARBINARY/BLOB as base64; CLOB and character types as strings; JSON
 * embedded as JSON; ARRAY as a JSON array of its elements written by these
 * same rules; UUID as its canonical text; GEOMETRY as its (E)WKT text;
 * anything else as H2's text; NULL as null.
 */
final class ValueWriter {
    private ValueWriter() {
    }

    static String write(ResultSet rs, int column) throws SQLException {
        StringBuilder out = new StringBuilder();
        write(out, rs, column);
        return out.toString();
    }

    static void write(StringBuilder out, ResultSet rs, int column) throws SQLException {
        ResultSetMetaData meta = rs.getMetaData();
        int type = meta.getColumnType(column);
        String name = meta.getColumnTypeName(column).toUpperCase(Locale.ROOT);
        if (rs.getObject(column) == null) {
            out.append("null");
            return;
        }
        if (type == Types.ARRAY || name.endsWith(" ARRAY") || name.equals("ARRAY")) {
            writeArray(out, rs.getArray(column));
            return;
        }
        switch (name) {
            case "JSON" -> out.append(rs.getString(column));
            case "UUID" -> Json.string(out, rs.getObject(column, UUID.class).toString());
            case "DECFLOAT" -> Json.string(out, rs.getString(column));
            case "DATE" -> Json.string(out, isoDate(rs.getObject(column, LocalDate.class)));
            case "TIME" -> Json.string(out,
                    DateTimeFormatter.ISO_LOCAL_TIME.format(
                            rs.getObject(column, LocalTime.class)));
            case "TIME WITH TIME ZONE" -> Json.string(out,
                    DateTimeFormatter.ISO_OFFSET_TIME.format(
                            rs.getObject(column, OffsetTime.class)));
            case "TIMESTAMP" -> Json.string(out,
                    DateTimeFormatter.ISO_LOCAL_DATE_TIME.format(
                            rs.getObject(column, LocalDateTime.class)));
            case "TIMESTAMP WITH TIME ZONE" -> Json.string(out,
                    DateTimeFormatter.ISO_OFFSET_DATE_TIME.format(
                            rs.getObject(column, OffsetDateTime.class)));
            default -> writeByJdbcType(out, rs, column, type);
        }
    }

    private static void writeByJdbcType(StringBuilder out, ResultSet rs, int column, int type)
            throws SQLException {
        switch (type) {
            case Types.TINYINT, Types.SMALLINT, Types.INTEGER, Types.BIGINT ->
                    out.append(rs.getLong(column));
            case Types.NUMERIC, Types.DECIMAL -> {
                BigDecimal value = rs.getBigDecimal(column);
                Json.string(out, value.toPlainString());
            }
            case Types.REAL -> number(out, rs.getFloat(column));
            case Types.FLOAT, Types.DOUBLE -> number(out, rs.getDouble(column));
            case Types.BOOLEAN, Types.BIT -> out.append(rs.getBoolean(column));
            case Types.BINARY, Types.VARBINARY, Types.LONGVARBINARY, Types.BLOB ->
                    Json.string(out, Base64.getEncoder().encodeToString(rs.getBytes(column)));
            default -> Json.string(out, rs.getString(column));
        }
    }

    private static void writeArray(StringBuilder out, Array array) throws SQLException {
        out.append('[');
        try (ResultSet elements = array.getResultSet()) {
            boolean first = true;
            while (elements.next()) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                write(out, elements, 2);
            }
        }
        out.append(']');
    }

    private static String isoDate(LocalDate date) {
        return DateTimeFormatter.ISO_LOCAL_DATE.format(date);
    }

    private static void number(StringBuilder out, float value) {
        if (Float.isFinite(value)) {
            out.append(Float.toString(value));
        } else {
            Json.string(out, Float.toString(value));
        }
    }

    private static void number(StringBuilder out, double value) {
        if (Double.isFinite(value)) {
            out.append(Double.toString(value));
        } else {
            Json.string(out, Double.toString(value));
        }
    }
}
