// Java model: `com.sun.net.httpserver.HttpServer` on the wildcard address (a dual-stack IPv6
// socket, so the kernel names its IPv4 peers ::ffff:127.0.0.1), a `newFixedThreadPool(8)`
// executor, and 4 redis sockets shared through an `ArrayBlockingQueue`: each request takes one,
// does INCR then GET, puts it back, spins and answers. Segments: the handler on its pool
// thread, from entry to the response's write (the pool thread read the request head just
// before). Kept in memory and written by a shutdown hook on SIGTERM, after the recording.
//
//   java examples/testbed/models/JavaPool.java --port P --redis R --truth FILE
import com.sun.net.httpserver.HttpServer;
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;
import java.util.concurrent.*;

public class JavaPool {
    record Segment(String rid, long tid, long t0, long t1) {}

    static final ConcurrentLinkedQueue<Segment> SEGMENTS = new ConcurrentLinkedQueue<>();
    static final long PID = ProcessHandle.current().pid();

    /** This thread's kernel thread id: /proc/thread-self is a link to PID/task/TID. */
    static long tid() {
        try {
            return Long.parseLong(Files.readSymbolicLink(Paths.get("/proc/thread-self")).getFileName().toString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** One redis connection: a blocking socket with a minimal RESP reader. */
    static final class Redis {
        final Socket s;
        final InputStream in;
        final OutputStream out;

        Redis(int port) throws IOException {
            s = new Socket("127.0.0.1", port);
            s.setTcpNoDelay(true);
            in = new BufferedInputStream(s.getInputStream());
            out = s.getOutputStream();
        }

        String call(String... parts) throws IOException {
            StringBuilder b = new StringBuilder("*" + parts.length + "\r\n");
            for (String p : parts) {
                b.append('$').append(p.getBytes(StandardCharsets.UTF_8).length).append("\r\n").append(p).append("\r\n");
            }
            out.write(b.toString().getBytes(StandardCharsets.UTF_8));
            out.flush();
            String line = readLine();
            if (line.startsWith("$") && !line.equals("$-1")) {
                byte[] v = in.readNBytes(Integer.parseInt(line.substring(1)) + 2);
                return new String(v, 0, v.length - 2, StandardCharsets.UTF_8);
            }
            return line.substring(1);
        }

        String readLine() throws IOException {
            StringBuilder b = new StringBuilder();
            int c;
            while ((c = in.read()) != -1 && c != '\n') {
                if (c != '\r') b.append((char) c);
            }
            return b.toString();
        }
    }

    static String arg(String[] a, String name, String dflt) {
        for (int i = 0; i + 1 < a.length; i++) if (a[i].equals(name)) return a[i + 1];
        return dflt;
    }

    public static void main(String[] a) throws Exception {
        int port = Integer.parseInt(arg(a, "--port", "19080"));
        int redisPort = Integer.parseInt(arg(a, "--redis", "19081"));
        String truth = arg(a, "--truth", "segments.jsonl");
        int spin = Integer.parseInt(arg(a, "--spin", "2000"));
        BlockingQueue<Redis> pool = new ArrayBlockingQueue<>(4);
        for (int i = 0; i < 4; i++) pool.put(new Redis(redisPort));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try (PrintWriter w = new PrintWriter(new FileWriter(truth))) {
                for (Segment s : SEGMENTS) {
                    w.printf("{\"request_id\": \"%s\", \"tier\": \"app\", \"pid\": %d, \"tid\": %d, \"t0\": %d, \"t1\": %d}%n",
                            s.rid(), PID, s.tid(), s.t0(), s.t1());
                }
            } catch (IOException e) {
                e.printStackTrace();
            }
        }));
        HttpServer server = HttpServer.create(new InetSocketAddress(port), 128);
        server.setExecutor(Executors.newFixedThreadPool(8));
        server.createContext("/", ex -> {
            // System.nanoTime is CLOCK_MONOTONIC on Linux, as the trace's clock.
            long t0 = System.nanoTime();
            String rid = Optional.ofNullable(ex.getRequestHeaders().getFirst("X-Request-ID")).orElse("");
            ex.getRequestBody().readAllBytes();
            String n;
            try {
                Redis r = pool.take();
                try {
                    n = r.call("INCR", "hits");
                    r.call("GET", "hits");
                } finally {
                    pool.put(r);
                }
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
            long x = 0;
            for (int i = 0; i < spin; i++) x += (long) i * i;
            byte[] body = ("ok " + rid + " " + n + " " + x + "\n").getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", "text/plain");
            ex.getResponseHeaders().set("X-Request-ID", rid);
            long tid = tid();
            SEGMENTS.add(new Segment(rid, tid, t0, System.nanoTime()));
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(body);
            }
        });
        server.start();
    }
}
