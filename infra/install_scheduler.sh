#!/usr/bin/env bash
# Set up a host that submits the nightly retrain to a Ray cluster; run as root from a checkout:
#   sudo infra/install_scheduler.sh            # a systemd timer (caponimage-retrain.timer)
#   sudo infra/install_scheduler.sh --cron     # a cron.d line instead (hosts without systemd)
# It creates the service user `caponimage`, /opt/caponimage with the submitter and a venv holding only
# Ray's job client at the project's Ray pin, /etc/caponimage/retrain.env from the example (kept if
# present), /var/log/caponimage, and the timer or the cron line. Then: edit retrain.env, copy the
# cluster's token to /etc/caponimage/ray_auth_token (mode 0600, owner caponimage) and enable the timer.
# ROOT=/path installs into a scratch root instead (its etc/passwd must exist) and starts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${ROOT:-}
NAME=caponimage
PREFIX=$ROOT/opt/caponimage
SETTINGS=$ROOT/etc/caponimage
LOGS=$ROOT/var/log/caponimage
PYTHON=${PYTHON:-python3.11}
MODE=systemd
case "${1:-}" in
  "") ;;
  --cron) MODE=cron ;;
  *) echo "usage: $0 [--cron]" >&2; exit 2 ;;
esac
RAY_VERSION=$(sed -n 's/.*"ray\[[a-z,]*\]==\([0-9.]*\)".*/\1/p' pyproject.toml)
[ -n "$RAY_VERSION" ] || { echo "error: no ray pin in pyproject.toml" >&2; exit 1; }

# 1. the service user (in ROOT's own passwd file when installing into a scratch root)
if ! grep -q "^$NAME:" "$ROOT/etc/passwd"; then
  useradd ${ROOT:+--prefix "$ROOT"} --system --user-group --home-dir /opt/caponimage --shell /usr/sbin/nologin "$NAME"
fi
uid=$(awk -F: -v n="$NAME" '$1 == n {print $3}' "$ROOT/etc/passwd")
gid=$(awk -F: -v n="$NAME" '$1 == n {print $4}' "$ROOT/etc/passwd")

# 2. the submitter and a venv with Ray's job client (the job itself runs in the cluster's image)
install -d -m 0755 "$PREFIX/infra"
install -m 0755 infra/submit_retrain.py "$PREFIX/infra/submit_retrain.py"
if ! "$PREFIX/.venv/bin/python" -c "import ray.job_submission" 2>/dev/null; then
  "$PYTHON" -m venv "$PREFIX/.venv"
  "$PREFIX/.venv/bin/pip" install -q "ray[default]==$RAY_VERSION"
fi

# 3. the settings (readable by the service user only), the token's place, the log folder cron writes to
install -d -m 0750 "$SETTINGS" && chown "0:$gid" "$SETTINGS"
if [ ! -e "$SETTINGS/retrain.env" ]; then
  install -m 0640 infra/retrain.env.example "$SETTINGS/retrain.env" && chown "0:$gid" "$SETTINGS/retrain.env"
fi
install -d -m 0755 "$LOGS" && chown "$uid:$gid" "$LOGS"

# 4. the schedule
if [ "$MODE" = systemd ]; then
  install -d "$ROOT/etc/systemd/system"
  install -m 0644 infra/systemd/caponimage-retrain.service infra/systemd/caponimage-retrain.timer "$ROOT/etc/systemd/system/"
  [ -n "$ROOT" ] || systemctl daemon-reload
  next="systemctl enable --now caponimage-retrain.timer"
else
  install -d "$ROOT/etc/cron.d"
  install -m 0644 infra/cron/caponimage-retrain "$ROOT/etc/cron.d/caponimage-retrain"
  next="nothing: cron reads /etc/cron.d by itself"
fi
echo "installed ($MODE, Ray $RAY_VERSION). Next: edit /etc/caponimage/retrain.env; install -m 0600 -o $NAME TOKEN-FILE /etc/caponimage/ray_auth_token; $next"
