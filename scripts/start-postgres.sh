#!/usr/bin/env bash
# Start Debian's PostgreSQL server on loopback for the storage tests and create the test role.
# Prints nothing on success; make test then runs the tests with
#   HEPAVOL_TEST_POSTGRES=postgresql://hepavol_test:hepavol_test@127.0.0.1:5432/postgres
# Needs the Debian package postgresql (installed by make system-deps) and root (or sudo) to start the server.
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "error: starting PostgreSQL for the tests needs root or sudo (or set HEPAVOL_TEST_POSTGRES to a server)" >&2
  exit 2
fi
command -v pg_lsclusters >/dev/null || { echo "error: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 2; }
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  $SUDO pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
  $SUDO pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 2; }
run_psql() {
  if [ -z "$SUDO" ]; then runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 "$@"; else sudo -u postgres psql -q -v ON_ERROR_STOP=1 "$@"; fi
}
run_psql -d postgres -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hepavol_test') THEN
    CREATE ROLE hepavol_test LOGIN CREATEDB PASSWORD 'hepavol_test';
  END IF; END \$\$;" >/dev/null
# dropping a test database WITH (FORCE) must also end an autovacuum worker that happens to be in it
run_psql -d postgres -c "GRANT pg_signal_backend TO hepavol_test;" >/dev/null
