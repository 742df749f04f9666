#!/usr/bin/env bash
# One-shot of docker-compose.yml: least-privilege credentials for the agent and the worker, so that
# neither runs as the elastic superuser. Idempotent: roles and users are created or updated.
#   role inferwatch_agent  (roles/inferwatch_agent.json):  create documents in logs-inferwatch.*
#   role inferwatch_worker (roles/inferwatch_worker.json): read those, write its alert indices
#   users inferwatch_agent and inferwatch_worker, with AGENT_ES_PASSWORD and WORKER_ES_PASSWORD
set -euo pipefail
ES_URL=${ES_URL:-http://elasticsearch:9200}
ROLES_DIR=${ROLES_DIR:-/roles}

check_password() {  # name value: a native-realm password, safe to put in a JSON string
  if [ "${#2}" -lt 6 ]; then
    echo "$1 must have at least 6 characters (Elasticsearch's native realm); set it in .env" >&2
    exit 1
  fi
  case "$2" in
    *'"'* | *'\'*) echo "$1 must not contain \" or \\; choose another in .env" >&2; exit 1 ;;
  esac
}

call() {  # method path body: fails (exit 1) unless Elasticsearch answers 2xx
  local answer status
  answer=$(curl --silent --show-error -u "elastic:${ELASTIC_PASSWORD}" -H "Content-Type: application/json" \
    -X "$1" "${ES_URL}$2" -d "$3" -w $'\n%{http_code}')
  status=${answer##*$'\n'}
  echo "$1 $2: ${status} ${answer%$'\n'*}"
  case "${status}" in
    2??) ;;
    *) echo "$1 $2 failed with HTTP ${status}; check ELASTIC_PASSWORD and the answer above" >&2; exit 1 ;;
  esac
}

check_password AGENT_ES_PASSWORD "${AGENT_ES_PASSWORD}"
check_password WORKER_ES_PASSWORD "${WORKER_ES_PASSWORD}"
for component in agent worker; do
  call PUT "/_security/role/inferwatch_${component}" "$(cat "${ROLES_DIR}/inferwatch_${component}.json")"
done
call POST /_security/user/inferwatch_agent \
  "{\"password\":\"${AGENT_ES_PASSWORD}\",\"roles\":[\"inferwatch_agent\"],\"full_name\":\"inferwatch agent\"}"
call POST /_security/user/inferwatch_worker \
  "{\"password\":\"${WORKER_ES_PASSWORD}\",\"roles\":[\"inferwatch_worker\"],\"full_name\":\"inferwatch worker\"}"
echo "inferwatch_agent and inferwatch_worker ready"
