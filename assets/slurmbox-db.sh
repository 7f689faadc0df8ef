#!/bin/bash
# slurmbox-db: the main process of a cluster's database container, under tini. It runs
# MariaDB (Debian's mariadb-server) with the accounting database on the cluster's
# NAME-db volume, for slurmdbd alone.
#
# The database password is made here, once, from the kernel's RNG, into the secret
# volume this container and slurmdbd's share (mode 0600, root's): never in an image, a
# variable or a command line. Each start makes sure MariaDB's slurm account has it.
#
# Usage: slurmbox-db
# Environment (set by slurmbox):
#   SLURMBOX_DB_BIND   the address MariaDB listens on (127.0.0.1 on a host's network)
#   SLURMBOX_DB_PORT   its port
set -euo pipefail

log() { echo "slurmbox-db: $*" >&2; }
secret=/var/lib/slurmbox/secret/db-password
# Made once the database answers with the slurm account set up; slurmdbd waits for it.
ready=/var/lib/slurmbox/secret/db-ready
data=/var/lib/mysql
rm -f "$ready"

if [ ! -s "$secret" ]; then
    log "making this cluster's database password"
    (umask 077 && head -c 48 /dev/urandom | base64 -w0 | tr -d '/+=' | head -c 40 >"$secret.new")
    mv "$secret.new" "$secret"
fi
chmod 0600 "$secret"

install -d -o mysql -g mysql -m 0755 /run/mysqld
# Files made under an image whose mysql account had another ID go to this one's.
if [ "$(stat -c %u "$data")" != "$(id -u mysql)" ] ||
    find "$data" -mindepth 1 -maxdepth 1 ! -user mysql | grep -q .; then
    log "handing the database files to this image's mysql account (UID $(id -u mysql))"
    chown -R mysql:mysql "$data"
fi
if [ ! -d "$data/mysql" ]; then
    log "making the database files on the volume"
    mariadb-install-db --user=mysql --datadir="$data" --skip-test-db \
        --auth-root-authentication-method=socket >/dev/null
fi

# MariaDB encrypts slurmdbd's connection (TLS). Given no certificate, it makes itself a
# new RSA one at every start: 0.1-1.1 s on the way to the first job here, more while
# the cluster's other containers start. The database gets its own key and certificate
# instead, once, on its volume (the key readable by MariaDB's account alone): an
# elliptic-curve key, made in milliseconds.
tls_key="$data/slurmbox-tls-key.pem"
tls_cert="$data/slurmbox-tls-cert.pem"
if [ ! -s "$tls_key" ] || [ ! -s "$tls_cert" ]; then
    log "making the database's TLS key and certificate"
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tls_key.new" -out "$tls_cert" -days 36500 -subj "/CN=slurmbox-db" 2>/dev/null)
    chown mysql:mysql "$tls_key.new" "$tls_cert"
    mv "$tls_key.new" "$tls_key"
fi

# MariaDB runs this SQL itself as it starts, before it takes connections: once it
# answers, slurmdbd can connect (no client started after it, on the way to the first
# job). The password goes in a file only MariaDB's account and root can read, removed
# once MariaDB answers: it is on no command line.
# The database slurmdbd keeps its tables in is made here: slurmdbd making it on its first
# start fails its next query on that connection and exits (seen with 24.11 and MariaDB
# 11.8), and the container's restart costs seconds.
init=/run/mysqld/slurmbox-init.sql
(
    umask 077
    password=$(cat "$secret")
    cat >"$init" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'%' IDENTIFIED BY '$password';
ALTER USER 'slurm'@'%' IDENTIFIED BY '$password';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'%';
FLUSH PRIVILEGES;
SQL
)
chown mysql:mysql "$init"

mariadbd --user=mysql --datadir="$data" --bind-address="${SLURMBOX_DB_BIND:-0.0.0.0}" \
    --port="${SLURMBOX_DB_PORT:-3306}" --ssl-cert="$tls_cert" --ssl-key="$tls_key" --init-file="$init" &
db=$!
stop() {
    rm -f "$ready"
    kill -TERM "$db" 2>/dev/null || true
}
trap stop TERM INT

# As long as MariaDB lives: a large database's recovery after a crash can take minutes,
# and MariaDB reads the file only at its end.
until mariadb-admin --protocol=socket ping >/dev/null 2>&1; do
    kill -0 "$db" 2>/dev/null || { rm -f "$init"; log "mariadbd exited"; exit 1; }
    sleep 0.1
done
rm -f "$init"
touch "$ready"
log "the accounting database is ready"

status=0
wait "$db" || status=$?
# A stop's TERM ends that wait at once, while MariaDB is still shutting down (writing its
# buffers, closing its tables): wait for its end, or the container's end would kill it
# halfway, and its next start would recover from a crash.
while kill -0 "$db" 2>/dev/null; do
    status=0
    wait "$db" || status=$?
done
rm -f "$ready"
log "mariadbd exited (status $status)"
exit "$status"
