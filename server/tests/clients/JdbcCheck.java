// pgjdbc against Weir: DatabaseMetaData.getTables, a prepared INSERT and a prepared query.
// Run by server/tests/integration/pg.rs: java -cp postgresql.jar:DIR JdbcCheck PORT
import java.sql.*;

public class JdbcCheck {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/weir";
        try (Connection conn = DriverManager.getConnection(url, "jdbc", "")) {
            try (Statement s = conn.createStatement()) {
                s.execute("CREATE STREAM orders (id BIGINT, item TEXT, price DOUBLE, ts TIMESTAMP)");
            }
            try (PreparedStatement insert = conn.prepareStatement("INSERT INTO orders VALUES (?, ?, ?, ?)")) {
                for (int i = 1; i <= 3; i++) {
                    insert.setLong(1, i);
                    insert.setString(2, "item-" + i);
                    insert.setDouble(3, i * 1.5);
                    insert.setTimestamp(4, Timestamp.valueOf("2024-01-01 00:00:0" + i));
                    System.out.println("inserted " + insert.executeUpdate());
                }
            }
            DatabaseMetaData meta = conn.getMetaData();
            System.out.println("product " + meta.getDatabaseProductName() + " " + meta.getDatabaseProductVersion());
            try (ResultSet tables = meta.getTables(null, null, "%", null)) {
                while (tables.next()) {
                    System.out.println("table " + tables.getString("TABLE_SCHEM") + "." + tables.getString("TABLE_NAME"));
                }
            }
            try (PreparedStatement query = conn.prepareStatement(
                    "SELECT id, item, price, ts FROM orders WHERE price > ? ORDER BY id")) {
                query.setDouble(1, 2.0);
                try (ResultSet rows = query.executeQuery()) {
                    while (rows.next()) {
                        System.out.println("row " + rows.getLong(1) + " " + rows.getString(2) + " "
                                + rows.getDouble(3) + " " + rows.getTimestamp(4));
                    }
                }
            }
            try (Statement s = conn.createStatement()) {
                s.executeQuery("SELECT * FROM missing");
            } catch (SQLException e) {
                System.out.println("error " + e.getSQLState());
            }
        }
        System.out.println("ok");
    }
}
