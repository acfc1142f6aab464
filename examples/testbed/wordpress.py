#!/usr/bin/env python3
"""kreq testbed: a WordPress stack on loopback (nginx -> php-fpm over FastCGI -> MariaDB over
TCP), recorded with `kreq record`, with ground truth from PHP itself.

    python3 examples/testbed/wordpress.py --requests 200 --connections 4 \
        --record DATASET --truth truth.jsonl

Needs root and Debian's nginx, php-fpm, php-mysql, php-apcu, mariadb-server, wordpress and
wordpress-theme-twentytwentythree. Everything lives in the work directory: a copy of
/usr/share/wordpress with its own wp-config.php, a MariaDB data directory, php-fpm's and
nginx's configs. php-fpm runs a static pool of 4 workers; WordPress opens a MariaDB connection
per request (a thread of MariaDB's per connection). The load generator asks for the front page.

The truth file has one line per request: the load generator's id, thread and CLOCK_MONOTONIC
start/end, and one segment per request, the php-fpm worker that ran it from the start of its
script to the end of its response, after its database connection closed ({tier: "php", pid, tid, t0, t1}; PHP's `hrtime` is
CLOCK_MONOTONIC). An `auto_prepend_file` keeps the segments in APCu's shared memory (no
syscall) and hands them out, after the recording, to a request with an `X-Kreq-Dump` header.
MariaDB logs nothing per request, so it is the backend the score asks for. Every process the
driver starts is stopped before it exits.
"""
import argparse
import glob
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse

import procs
from procs import start, stop_all

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--requests", type=int, default=200)
p.add_argument("--connections", type=int, default=4)
p.add_argument("--workers", type=int, default=4, help="php-fpm's static pool size")
p.add_argument("--record", help="record with `kreq record` into this dataset directory")
p.add_argument("--record-arg", action="append", default=[], help="extra argument for kreq record")
p.add_argument("--truth", help="write ground truth here (jsonl)")
p.add_argument("--kreq", default=os.environ.get("KREQ_BIN", os.path.join(ROOT, "target", "debug", "kreq")))
p.add_argument("--workdir", help="keep the site and logs here (default: a temporary directory)")
p.add_argument("--port", type=int, default=19280,
               help="nginx's port; MariaDB listens on the next, php-fpm on the one after")
args = p.parse_args()

work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="kreq-wordpress-"))
os.makedirs(work, exist_ok=True)
DB_PORT, FPM_PORT = args.port + 1, args.port + 2
SITE = f"http://127.0.0.1:{args.port}"


def need(path, package):
    if not os.path.exists(path):
        raise SystemExit(f"wordpress: {path} is missing (apt-get install {package})")
    return path


def wait_port(port, timeout=30.0):
    procs.wait_port(port, timeout, work)


def start_mariadb():
    """A throwaway MariaDB in the work directory, run as root, listening on 127.0.0.1 only,
    with a database `wp` for user `wp`."""
    mariadbd = need("/usr/sbin/mariadbd", "mariadb-server")
    data = os.path.join(work, "db")
    sock = os.path.join(work, "mysqld.sock")
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "install-db.log"), "w"))
    start([mariadbd, "--no-defaults", "--user=root", f"--datadir={data}", f"--socket={sock}",
           f"--port={DB_PORT}", "--bind-address=127.0.0.1", f"--pid-file={work}/mysqld.pid",
           f"--log-error={work}/mysqld.err", "--skip-log-bin", "--skip-name-resolve",
           "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2"])
    wait_port(DB_PORT)
    subprocess.run(["mariadb", "--no-defaults", "-S", sock, "-u", "root", "-e",
                    "CREATE DATABASE wp; CREATE USER 'wp'@'127.0.0.1' IDENTIFIED BY 'wp'; "
                    "GRANT ALL ON wp.* TO 'wp'@'127.0.0.1';"], check=True)


PREPEND = r"""<?php
// kreq testbed truth: one segment per request, kept in APCu (shared memory, no syscall).
if (isset($_SERVER['HTTP_X_KREQ_DUMP'])) {
    header('Content-Type: application/x-ndjson');
    $n = apcu_fetch('kreq_n') ?: 0;
    for ($i = 1; $i <= $n; $i++) {
        $s = apcu_fetch("kreq_$i");
        if ($s !== false) echo json_encode($s), "\n";
    }
    exit;
}
$GLOBALS['kreq_t0'] = hrtime(true);
// The segment ends after everything the worker does for the request: registered from a
// shutdown function, this one runs after WordPress's own; it closes the database connection
// and sends the rest of the response (FastCGI's end of request) before taking the time.
register_shutdown_function(function () {
    register_shutdown_function(function () {
        if (isset($GLOBALS['wpdb'])) $GLOBALS['wpdb']->close();
        fastcgi_finish_request();
        $t1 = hrtime(true);
        apcu_add('kreq_n', 0);
        $i = apcu_inc('kreq_n');
        apcu_store("kreq_$i", ['request_id' => $_SERVER['HTTP_X_REQUEST_ID'] ?? '', 'tier' => 'php',
            'pid' => getmypid(), 'tid' => getmypid(), 't0' => $GLOBALS['kreq_t0'], 't1' => $t1]);
    });
});
"""


def start_php_fpm():
    """php-fpm (run as root) with a static pool on 127.0.0.1, the truth prepend file and APCu."""
    fpm = sorted(glob.glob("/usr/sbin/php-fpm*"))
    if not fpm:
        raise SystemExit("wordpress: php-fpm is not installed (apt-get install php-fpm)")
    prepend = os.path.join(work, "kreq-truth.php")
    with open(prepend, "w") as f:
        f.write(PREPEND)
    conf = os.path.join(work, "php-fpm.conf")
    with open(conf, "w") as f:
        f.write(f"""[global]
pid = {work}/php-fpm.pid
error_log = {work}/php-fpm.log
daemonize = no
[wp]
user = root
group = root
listen = 127.0.0.1:{FPM_PORT}
pm = static
pm.max_children = {args.workers}
php_admin_value[auto_prepend_file] = {prepend}
php_admin_value[apc.enabled] = 1
php_admin_value[apc.shm_size] = 32M
php_admin_value[error_log] = {work}/php-error.log
""")
    start([fpm[-1], "--nodaemonize", "--allow-to-run-as-root", "--fpm-config", conf])
    wait_port(FPM_PORT)


def start_nginx():
    """nginx on the port, serving the site's copy and passing PHP to php-fpm over FastCGI
    (a connection per request), echoing the load generator's X-Request-ID."""
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    need(nginx_bin, "nginx-light")
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""{procs.nginx_head(work)}
  access_log off;
  server {{
    listen 127.0.0.1:{args.port};
    keepalive_requests 100000;
    root {work}/wp;
    index index.php;
    add_header X-Request-ID $http_x_request_id always;
    location / {{ try_files $uri $uri/ /index.php?$args; }}
    location ~ \\.php$ {{
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_pass 127.0.0.1:{FPM_PORT};
    }}
  }}
}}
""")
    start([nginx_bin, "-p", work, "-c", conf, "-g", "daemon off;"])
    wait_port(args.port)


def install_site():
    """A copy of Debian's WordPress with its own config, installed through its web installer."""
    src = need("/usr/share/wordpress/wp-settings.php", "wordpress")
    need("/usr/share/wordpress/wp-content/themes/twentytwentythree", "wordpress-theme-twentytwentythree")
    site = os.path.join(work, "wp")
    shutil.copytree(os.path.dirname(src), site, symlinks=True)
    salts = "".join(f"define('{k}', 'kreq-testbed-{k}');\n" for k in (
        "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
        "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))
    with open(os.path.join(site, "wp-config.php"), "w") as f:
        # No WP-Cron (it calls the site over loopback from a request) and no outside calls.
        f.write(f"""<?php
define('DB_NAME', 'wp'); define('DB_USER', 'wp'); define('DB_PASSWORD', 'wp');
define('DB_HOST', '127.0.0.1:{DB_PORT}'); define('DB_CHARSET', 'utf8mb4'); define('DB_COLLATE', '');
{salts}define('WP_HOME', '{SITE}'); define('WP_SITEURL', '{SITE}');
define('DISABLE_WP_CRON', true); define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
$table_prefix = 'wp_';
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
""")
    # WordPress answered the front page on 127.0.0.1:PORT with a redirect to itself; the
    # testbed asks for one URL only, so canonical redirects are off.
    os.makedirs(os.path.join(site, "wp-content", "mu-plugins"), exist_ok=True)
    with open(os.path.join(site, "wp-content", "mu-plugins", "kreq-testbed.php"), "w") as f:
        f.write("<?php remove_action('template_redirect', 'redirect_canonical');\n")
    form = urllib.parse.urlencode({
        "weblog_title": "kreq testbed", "user_name": "admin", "admin_password": "kreq-testbed-pw",
        "admin_password2": "kreq-testbed-pw", "pw_weak": "1", "admin_email": "admin@example.invalid",
        "blog_public": "0"})
    status, body = http_call("POST", "/wp-admin/install.php?step=2", form,
                             {"Content-Type": "application/x-www-form-urlencoded"})
    if status != 200 or b"Success" not in body:
        raise SystemExit(f"wordpress: the installer answered {status} (see {work}/php-error.log)")
    status, body = http_call("GET", "/")
    if status != 200 or b"kreq testbed" not in body:
        raise SystemExit(f"wordpress: the front page answered {status}: {body[:300]!r} (see {work}/php-error.log)")


def http_call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    conn.request(method, path, body, headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status in (301, 302):
        data = f"redirect to {resp.getheader('Location')}".encode()
    return resp.status, data


def write_truth(path):
    """Merges the load generator's log with PHP's segments, fetched after the recording."""
    status, body = http_call("GET", "/", headers={"X-Kreq-Dump": "1"})
    if status != 200:
        raise SystemExit(f"wordpress: the truth dump answered {status}")
    segs = {}
    for line in body.decode().splitlines():
        s = json.loads(line)
        segs.setdefault(s.pop("request_id"), []).append(s)
    return procs.write_segment_truth(path, work, segs)

def main():
    start_mariadb()
    start_php_fpm()
    start_nginx()
    install_site()
    # The front page's code compiled into OPcache first, as on a site that has served traffic.
    for _ in range(2 * args.workers):
        http_call("GET", "/")
    record = args.record and [args.kreq, "record", "-o", args.record, "--force"] + args.record_arg
    summary = procs.recorded_load("wordpress", work, record, [
        "--port", str(args.port), "--requests", str(args.requests), "--connections", str(args.connections),
        "--path", "/", "--id-prefix", "wp-"])
    if args.truth:
        summary["truth_requests"], summary["truth_with_segments"] = write_truth(args.truth)
    summary["model"] = "wordpress"
    summary["workdir"] = work
    print(json.dumps(summary), flush=True)


try:
    main()
finally:
    stop_all()
