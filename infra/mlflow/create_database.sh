#!/usr/bin/env bash
# The PostgreSQL role and database behind the team's MLflow server, on a host with Debian's
# `postgresql` package (run as root). It asks for the role's password, which goes into
# MLFLOW_BACKEND_STORE_URI in /etc/caponimage/mlflow-server.env; mlflow server creates its tables
# on first start and migrates them on an upgrade (`mlflow db upgrade URI` first, with the server stopped).
set -euo pipefail
ROLE=${1:-mlflow}
DATABASE=${2:-mlflow}
runuser -u postgres -- createuser --pwprompt "$ROLE"
runuser -u postgres -- createdb --owner "$ROLE" --encoding UTF8 "$DATABASE"
id -u mlflow >/dev/null 2>&1 || useradd --system --home-dir /opt/mlflow --shell /usr/sbin/nologin mlflow
echo "database $DATABASE owned by $ROLE is ready: set MLFLOW_BACKEND_STORE_URI=postgresql://$ROLE:PASSWORD@127.0.0.1:5432/$DATABASE"
