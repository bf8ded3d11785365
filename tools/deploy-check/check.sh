#!/usr/bin/env bash
# Checks deploy/ with the real tools (run by `bazel test //tools/deploy-check:deploy_check_test`):
#   kustomize rendering of base and overlays (kubectl kustomize) -> schema, reference and policy
#   validation (validate.mjs, kubernetes-models); yamllint; promtool check/test rules; the
#   Grafana dashboard's structure. Live-metric checks of the dashboard and a real Prometheus
#   scrape are in tests/integration/observability_test.py.
set -uo pipefail

# Runfiles are symlinks into the source tree; node resolves modules from the real file, so
# node_modules (installed by `./cluster test`: npm ci in tools/deploy-check) is found there.
here="$(dirname "$(readlink -f "${TEST_SRCDIR}/${TEST_WORKSPACE}/tools/deploy-check/validate.mjs")")"
root="$(cd "$here/../.." && pwd)"
work="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }

for tool in kubectl node yamllint promtool python3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (./cluster test installs it)"; exit 1; }
done
if [ ! -d "$here/node_modules/kubernetes-models" ]; then
  echo "missing $here/node_modules: run 'npm ci' there (./cluster test does)"
  exit 1
fi

external=(--external-secret xc-gateway-tls --external-secret xc-internal-tls
          --external-secret xc-redis-credentials)
for layer in base overlays/dev overlays/prod; do
  step "kustomize + validate deploy/k8s/$layer"
  out="$work/$(echo "$layer" | tr / _).yaml"
  if ! kubectl kustomize "$root/deploy/k8s/$layer" >"$out" 2>"$work/kustomize.err"; then
    cat "$work/kustomize.err"
    fail "kubectl kustomize deploy/k8s/$layer"
    continue
  fi
  node "$here/validate.mjs" "${external[@]}" "$out" || fail "validate deploy/k8s/$layer"
done

step "validator rejects broken manifests"
node "$here/validate.mjs" "$here/testdata/broken.yaml" >"$work/broken.out" 2>&1
rc=$?
sed "s/^/  expected: /" "$work/broken.out"
[ "$rc" -eq 1 ] || fail "validate.mjs accepted testdata/broken.yaml (exit $rc)"
for expected in "containerPort must be integer" "Service/orphan: selector matches no workload" \
    "scales Deployment/missing, which is not rendered" "ServiceMonitor/wrong-port: selects no Service" \
    "root filesystem is writable" "no livenessProbe" "no memory limit"; do
  grep -qF "$expected" "$work/broken.out" || fail "validate.mjs did not report: $expected"
done

step "yamllint deploy/"
yamllint -s -c "$root/.yamllint" "$root/deploy" || fail "yamllint"

step "promtool check rules / test rules"
promtool check rules "$root/deploy/monitoring/alerts.rules.yaml" || fail "promtool check rules"
(cd "$root/deploy/monitoring" && promtool test rules alerts.test.yaml) || fail "promtool test rules"

step "Grafana dashboard"
python3 - "$root/deploy/monitoring/grafana-dashboard.json" <<'PY' || fail "grafana dashboard"
import json, sys
board = json.load(open(sys.argv[1]))
problems = []
for key in ("title", "uid", "panels", "schemaVersion"):
    if key not in board:
        problems.append(f"dashboard has no {key}")
ids = set()
for panel in board.get("panels", []):
    title = panel.get("title", "?")
    if panel.get("id") in ids:
        problems.append(f"panel {title}: duplicate id {panel.get('id')}")
    ids.add(panel.get("id"))
    if not panel.get("targets"):
        problems.append(f"panel {title}: no queries")
    for target in panel.get("targets", []):
        if not target.get("expr"):
            problems.append(f"panel {title}: a query without expr")
    pos = panel.get("gridPos", {})
    if not all(k in pos for k in ("x", "y", "w", "h")):
        problems.append(f"panel {title}: no gridPos")
for p in problems:
    print(p)
print(f"{len(board.get('panels', []))} panels, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all deployment checks passed"
