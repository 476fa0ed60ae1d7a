// Dev Neo4j server for Weaver's live suites, started by scripts/services.sh.
//
// There is no Neo4j distribution tarball on the registries reachable here, so
// this single-file program runs the embedded Community database from the jars
// that services.sh copies out of Maven Central, with the Bolt connector on:
//
//     java -cp '<cache>/lib/*' scripts/neo4j/Launcher.java
//
// (Java 11+ compiles a single source file in memory: no build step.)
//
// Settings come from the environment so that services.sh stays the one place
// that knows ports and paths:
//   NEO4J_HOME_DIR        data/logs directory (required; outside the checkout)
//   NEO4J_BOLT_HOST       default 127.0.0.1 (loopback only)
//   NEO4J_BOLT_PORT       default 7687
//   NEO4J_USER            default neo4j (the only user Community lets us seed)
//   NEO4J_PASSWORD        default weaver_dev_password (at least 8 characters)
//   NEO4J_PAGECACHE_MB    default 128
//
// The line starting with READY_MARKER is printed only once the password is
// set and a real Bolt round trip (authenticated RETURN 1) has succeeded, so a
// client that sees it can connect at once. services.sh waits for that line.

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.driver.AuthTokens;
import org.neo4j.driver.Driver;
import org.neo4j.driver.GraphDatabase;
import org.neo4j.driver.Session;
import org.neo4j.driver.exceptions.AuthenticationException;
import org.neo4j.graphdb.GraphDatabaseService;

public class Launcher {
    static final String READY_MARKER = "WEAVER_NEO4J_READY";

    static String env(String name, String dflt) {
        String v = System.getenv(name);
        return (v == null || v.isEmpty()) ? dflt : v;
    }

    public static void main(String[] args) throws Exception {
        String homeDir = System.getenv("NEO4J_HOME_DIR");
        if (homeDir == null || homeDir.isEmpty()) {
            System.err.println("NEO4J_HOME_DIR is not set");
            System.exit(2);
        }
        Path home = Path.of(homeDir).toAbsolutePath();
        Files.createDirectories(home);
        String host = env("NEO4J_BOLT_HOST", "127.0.0.1");
        int port = Integer.parseInt(env("NEO4J_BOLT_PORT", "7687"));
        String user = env("NEO4J_USER", "neo4j");
        String password = env("NEO4J_PASSWORD", "weaver_dev_password");
        long pagecacheBytes = Long.parseLong(env("NEO4J_PAGECACHE_MB", "128")) * 1024L * 1024L;
        if (password.length() < 8) {
            // Neo4j refuses shorter passwords; fail before touching the store.
            System.err.println("NEO4J_PASSWORD must be at least 8 characters");
            System.exit(2);
        }
        if (!"neo4j".equals(user)) {
            // Community has a single built-in admin user; creating others is
            // possible but nothing in Weaver needs it, so refuse clearly.
            System.err.println("NEO4J_USER must be 'neo4j' for the dev server");
            System.exit(2);
        }

        long t0 = System.nanoTime();
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(host, port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(host, port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                // Suites check that a wrong password is refused; with the default
                // of 3 failures, a few such checks running close together would
                // lock the shared neo4j user for 5 s and fail unrelated tests.
                .setConfig(GraphDatabaseSettings.auth_max_failed_attempts, 20)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pagecacheBytes)
                // Test suites write a lot and nothing here needs point-in-time
                // recovery: keep two 32 MiB transaction log files per database
                // instead of two days' worth in 256 MiB files (hundreds of MB).
                .setConfig(GraphDatabaseSettings.logical_log_rotation_threshold, 32L * 1024 * 1024)
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "2 files")
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .build();

        long tDbms = System.nanoTime();

        // Stop cleanly on SIGTERM/SIGINT (services.sh down) so the store is
        // not left needing recovery on the next start.
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("neo4j launcher: shutting down");
            try {
                dbms.shutdown();
            } catch (Throwable t) {
                t.printStackTrace();
            }
            stopped.countDown();
        }, "weaver-neo4j-shutdown"));

        // There is no initial-password setting in embedded mode: the built-in
        // user starts as neo4j/neo4j with a forced change, and is set through
        // the system database. Try the wanted password over Bolt first, so
        // that the usual start (password set on an earlier one) skips that
        // system-database write; one failed login is far below Neo4j's
        // lock-out threshold.
        String uri = "bolt://" + host + ":" + port;
        long tPassword = System.nanoTime();
        if (!boltCheck(uri, user, password)) {
            GraphDatabaseService system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
            System.out.println("neo4j launcher: password set for user neo4j");
            tPassword = System.nanoTime();
            if (!boltCheck(uri, user, password)) {
                throw new IllegalStateException("Bolt login still refused after setting the password");
            }
        }

        long tReady = System.nanoTime();
        // Phase timings help to see where a slow start went (JVM start and
        // the in-memory compile of this file happen before main and are not
        // included; services.sh reports the total).
        System.out.printf("%s bolt://%s:%d in %d ms (neo4j %s; dbms %d ms, password %d ms, bolt check %d ms)%n",
                READY_MARKER, host, port, (tReady - t0) / 1_000_000,
                org.neo4j.kernel.internal.Version.getNeo4jVersion(),
                (tDbms - t0) / 1_000_000, (tPassword - tDbms) / 1_000_000, (tReady - tPassword) / 1_000_000);
        System.out.flush();
        stopped.await();
    }

    // The wire path a client uses: Bolt, authenticated, a query. False when
    // the credentials are refused; any other failure is thrown.
    static boolean boltCheck(String uri, String user, String password) {
        try (Driver driver = GraphDatabase.driver(uri, AuthTokens.basic(user, password));
             Session session = driver.session()) {
            long one = session.run("RETURN 1 AS one").single().get("one").asLong();
            if (one != 1) {
                throw new IllegalStateException("Bolt self-check returned " + one);
            }
            return true;
        } catch (AuthenticationException e) {
            return false;
        }
    }
}
